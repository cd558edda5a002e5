import pytest

pytestmark = pytest.mark.django_db


def _field_blocks(html: str) -> list[str]:
    return html.split('<div class="field')[1:]


def test_a_password_error_sits_under_the_password_field_not_the_email_field(client):
    response = client.post("/accounts/signup/", {"email": "x@example.com", "password1": "abc", "password2": "abc"})
    html = response.content.decode()
    blocks = {block.split('name="')[1].split('"')[0]: block for block in _field_blocks(html) if 'name="' in block}
    assert "too short" in blocks["password1"]
    assert "errorlist" not in blocks["email"] and "errorlist" not in blocks["password2"]
    # The error comes right after its input, and the input points at it.
    password = blocks["password1"]
    assert password.index('name="password1"') < password.index("too short")
    assert 'aria-describedby="id_password1_helptext id_password1_error"' in password
    assert 'id="id_password1_error"' in password


def test_the_login_form_keeps_its_fields(client):
    html = client.get("/accounts/login/").content.decode()
    assert 'name="login"' in html and 'name="password"' in html and 'name="remember"' in html
