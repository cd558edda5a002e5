import pytest
from django.test import RequestFactory, override_settings

from apps.blog.models import Post
from kiwiwhale.lib.keyset import InvalidCursor, keyset_page
from kiwiwhale.lib.ratelimit import client_ip, rate_limit_hit, rate_parse


@pytest.mark.django_db
def test_it_pages_through_equal_timestamps_without_repeats_or_gaps():
    from django.utils import timezone

    moment = timezone.now()
    for index in range(7):
        Post.objects.create(title=str(index), slug=f"s{index}", body="", is_draft=False, published_at=moment)
    seen, cursor = [], ""
    while True:
        rows, cursor = keyset_page(Post.objects.all(), ordering=["-published_at", "-id"], cursor=cursor, limit=3)
        seen += [row.slug for row in rows]
        if not cursor:
            break
    assert seen == [f"s{index}" for index in range(6, -1, -1)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "cursor", ["???", "W10", "WzEsMl0", "WyJub3QtYS1kYXRlIiwxXQ", "WyIyMDI0LTAxLTAxVDAwOjAwOjAwWiIsbnVsbF0"]
)
def test_it_refuses_a_forged_cursor(cursor):
    with pytest.raises(InvalidCursor):
        keyset_page(Post.objects.all(), ordering=["-published_at", "-id"], cursor=cursor, limit=3)


def test_rates_parse_and_can_be_switched_off():
    assert rate_parse("5/hour") == (5, 3600)
    assert rate_parse("10/min") == (10, 60)
    assert rate_parse("") is None and rate_parse("off") is None
    with pytest.raises(ValueError):
        rate_parse("5 per hour")


def test_a_rate_limit_counts_per_scope_and_ident():
    assert [rate_limit_hit("t", "a", rate="2/hour") for _ in range(3)][:2] == [0, 0]
    assert rate_limit_hit("t", "a", rate="2/hour") > 0
    assert rate_limit_hit("t", "b", rate="2/hour") == 0
    assert rate_limit_hit("other", "a", rate="2/hour") == 0
    assert all(rate_limit_hit("t", "a", rate="off") == 0 for _ in range(5))


def test_the_client_address_trusts_only_the_declared_proxies():
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="1.1.1.1, 2.2.2.2, 3.3.3.3")
    with override_settings(REST_FRAMEWORK={"NUM_PROXIES": 0}):
        assert client_ip(request) == "10.0.0.1"
    with override_settings(REST_FRAMEWORK={"NUM_PROXIES": 1}):
        assert client_ip(request) == "3.3.3.3"
    with override_settings(REST_FRAMEWORK={"NUM_PROXIES": 2}):
        assert client_ip(request) == "2.2.2.2"


def _cursor(values) -> str:
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "cursor",
    [
        _cursor(["2024-01-01T00:00:00Z", 1e400]),  # Infinity
        _cursor([[1], [2]]),
        _cursor(["2024-01-01T00:00:00Z", {"a": 1}]),
        _cursor(["2024-01-01T00:00:00Z", "1\u0000"]),
        "deep",
        "W" * 3 + "=" * 3,
    ],
)
def test_it_refuses_a_garbage_list_as_a_cursor(cursor):
    if cursor == "deep":
        import base64

        cursor = base64.urlsafe_b64encode(("[" * 5000 + "]" * 5000).encode()).decode()
    with pytest.raises(InvalidCursor):
        keyset_page(Post.objects.all(), ordering=["-published_at", "-id"], cursor=cursor, limit=3)
