"""Reading pages the way a browser does: the elements and attributes, not the bytes."""

from html.parser import HTMLParser


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self._select: dict | None = None

    def handle_starttag(self, tag, attrs):
        attributes = {name: (value if value is not None else "") for name, value in attrs}
        element = (tag, attributes)
        self.elements.append(element)
        if tag == "select":
            attributes["_options"] = []
            self._select = attributes
        elif tag == "option" and self._select is not None:
            self._select["_options"].append(attributes.get("value", ""))

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def elements(html: str | bytes, tag: str | None = None) -> list[dict]:
    """The attribute dicts (plus "tag") of the elements with this tag, or of every element when None."""
    collector = _Collector()
    collector.feed(html.decode() if isinstance(html, bytes) else html)
    return [{"tag": name, **attributes} for name, attributes in collector.elements if tag in (None, name)]


def controls(html: str | bytes) -> dict[str, dict]:
    """The generated form's controls (elements marked data-field), by field name."""
    return {element["name"]: element for element in elements(html) if "data-field" in element}


def forms(html: str | bytes) -> list[dict]:
    return elements(html, "form")
