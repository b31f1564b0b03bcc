"""caspo-lite's Textual app: consumes the search library's event stream (see `tui.app.make_app`)."""
