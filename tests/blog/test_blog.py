"""The blog: published posts only, Markdown rendered safely, keyset pages, RSS."""

from datetime import timedelta
from xml.etree import ElementTree

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.blog.markdown import markdown_to_html
from apps.blog.models import Post

pytestmark = pytest.mark.django_db

HOSTILE_MARKDOWN = """
# Hello

<script>alert("body")</script>
<img src="x" onerror="alert('img')">
[click me](javascript:alert('link'))
<a href="JaVaScRiPt:alert('caps')">caps</a>
<a href="java&#x09;script:alert('tab')">tab</a>
![pixel](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)
<iframe src="https://evil.example/"></iframe>
<div onclick="alert('div')" style="position:fixed">div</div>
<svg onload="alert('svg')"></svg>
[fine](https://example.com/page) and [relative](/docs/agents.php)
"""


def make_post(slug="hello", *, days_ago=1, draft=False, **fields):
    return Post.objects.create(
        title=fields.pop("title", slug.title()),
        slug=slug,
        body=fields.pop("body", "Some **bold** text."),
        is_draft=draft,
        published_at=timezone.now() - timedelta(days=days_ago) if days_ago is not None else None,
        **fields,
    )


def assert_inert(html: str):
    lowered = html.lower()
    for needle in (
        "<script",
        "onerror",
        "onclick",
        "onload",
        "javascript:",
        "data:text/html",
        "<iframe",
        "style=",
        "<svg",
    ):
        assert needle not in lowered, needle


def test_it_renders_markdown_and_strips_everything_hostile():
    html = str(markdown_to_html(HOSTILE_MARKDOWN))
    assert_inert(html)
    assert '<h1 id="hello">Hello</h1>' in html
    assert '<a href="https://example.com/page" rel="noopener noreferrer">fine</a>' in html
    assert '<a href="/docs/agents.php" rel="noopener noreferrer">relative</a>' in html


def test_the_post_page_is_inert_with_a_hostile_body_and_title(client):
    post = make_post("evil", body=HOSTILE_MARKDOWN, title='<script>alert("title")</script>')
    response = client.get(f"/blog.php?slug={post.slug}")
    assert response.status_code == 200
    body = response.content.decode()
    assert "<script>alert" not in body and "onerror=" not in body and "javascript:alert" not in body
    assert "&lt;script&gt;alert(&quot;title&quot;)&lt;/script&gt;" in body
    # The feed carries the title as text and the body as sanitised HTML (escaped inside the XML).
    item = ElementTree.fromstring(client.get("/blog/feed.xml").content).find("channel/item")  # noqa: S314 - our feed
    assert item.findtext("title") == '<script>alert("title")</script>'
    assert_inert(item.findtext("description"))


def test_the_list_shows_published_posts_newest_first_and_hides_drafts_and_scheduled(client):
    make_post("older", days_ago=3)
    make_post("newer", days_ago=1)
    make_post("draft", draft=True)
    make_post("scheduled", days_ago=-2)
    make_post("undated", days_ago=None, draft=False)
    response = client.get("/blog.php")
    assert response.status_code == 200
    assert [post.slug for post in response.context["posts"]] == ["newer", "older"]
    for hidden in ("draft", "scheduled", "undated"):
        assert client.get(f"/blog.php?slug={hidden}").status_code == 404
    assert client.get("/blog.php?slug=nope").status_code == 404


def test_staff_preview_drafts(admin_client):
    make_post("draft", draft=True)
    response = admin_client.get("/blog.php?slug=draft")
    assert response.status_code == 200 and b"Preview: this post is a draft" in response.content


def test_the_list_pages_by_keyset_and_costs_the_same_queries_at_any_length(client):
    make_post("p0", days_ago=50)
    with CaptureQueriesContext(connection) as one:
        client.get("/blog.php")
    for index in range(1, 14):
        make_post(f"p{index}", days_ago=50 - index)
    with CaptureQueriesContext(connection) as many:
        first = client.get("/blog.php")
    assert len(many) == len(one)
    assert len(first.context["posts"]) == 10 and first.context["posts"][0].slug == "p13"
    second = client.get("/blog.php", {"cursor": first.context["next_cursor"]})
    assert [post.slug for post in second.context["posts"]] == ["p3", "p2", "p1", "p0"]
    assert not second.context["next_cursor"]
    assert client.get("/blog.php", {"cursor": "%%%"}).status_code == 200


def test_the_rss_feed_lists_published_posts_with_absolute_links(client):
    make_post("hello", summary="Sum")
    make_post("secret-draft", draft=True)
    response = client.get("/blog/feed.xml")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/rss+xml")
    body = response.content.decode()
    assert "http://testserver/blog.php?slug=hello" in body and "secret-draft" not in body
    assert "&lt;strong&gt;bold&lt;/strong&gt;" in body


def test_the_discord_link_comes_from_the_settings(client, settings):
    make_post("hello")
    settings.DISCORD_URL = ""
    assert b"Discord" not in client.get("/blog.php").content
    settings.DISCORD_URL = "https://discord.gg/kiwiwhale"
    assert b'href="https://discord.gg/kiwiwhale"' in client.get("/blog.php").content
    assert b'href="https://discord.gg/kiwiwhale"' in client.get("/blog.php?slug=hello").content


def test_the_admin_edits_posts_and_previews_them_sanitised(admin_client, admin_user):
    response = admin_client.post(
        "/admin/blog/post/add/",
        {
            "title": "Launch",
            "slug": "launch",
            "summary": "",
            "body": "Hi <script>alert(1)</script>",
            "is_draft": "",
            "published_at_0": "2020-01-01",
            "published_at_1": "10:00:00",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    post = Post.objects.get()
    assert post.author == admin_user and post.is_live
    change = admin_client.get(f"/admin/blog/post/{post.pk}/change/").content.decode()
    assert "<script>alert(1)</script>" not in change and "Hi" in change
