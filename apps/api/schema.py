def published_paths_only(endpoints):
    """drf-spectacular hook: document the primary `.php` paths; the clean aliases answer the same way."""
    return [
        endpoint for endpoint in endpoints if not endpoint[0].startswith("/api/v1/") or endpoint[0].endswith(".php")
    ]
