from django.conf import settings
from django.http import Http404
from django.shortcuts import render

from apps.blog.markdown import post_html
from apps.blog.models import Post
from kiwiwhale.lib.keyset import InvalidCursor, keyset_page

PAGE_SIZE = 10


def blog(request):
    """/blog.php: the posts, newest first, or one post with ?slug=."""
    if "slug" in request.GET:
        return post_detail(request, request.GET["slug"])
    return post_list(request)


def post_list(request):
    posts = Post.objects.published()
    try:
        rows, next_cursor = keyset_page(
            posts, ordering=["-published_at", "-id"], cursor=request.GET.get("cursor", ""), limit=PAGE_SIZE
        )
    except InvalidCursor:
        rows, next_cursor = keyset_page(posts, ordering=["-published_at", "-id"], limit=PAGE_SIZE)
    return render(
        request,
        "blog/list.html",
        {"posts": rows, "next_cursor": next_cursor, "discord_url": settings.DISCORD_URL},
    )


def post_detail(request, slug: str):
    post = Post.objects.visible_to(request.user).select_related("author").filter(slug=slug).first()
    if post is None:
        raise Http404("No such post.")
    return render(
        request,
        "blog/detail.html",
        {"post": post, "body_html": post_html(post), "discord_url": settings.DISCORD_URL},
    )
