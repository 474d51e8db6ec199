"""Sphinx extension for this book: drop repeated <script> entries from every page.

jupyter-book 1.x runs sphinx-thebe's set-up twice per build, so each page declared
`const THEBE_JS_URL` twice and the browser reported a SyntaxError on every page. Identical
script entries are removed here, keeping the first.
"""


def _dedupe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        attrs = getattr(script, "attributes", {}) or {}
        key = (str(getattr(script, "filename", "") or ""), tuple(sorted((k, str(v)) for k, v in attrs.items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


def setup(app):
    app.connect("html-page-context", _dedupe, priority=10_000)   # after every other extension
    return {"parallel_read_safe": True, "parallel_write_safe": True}
