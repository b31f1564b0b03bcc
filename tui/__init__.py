"""caspo-lite's Textual app: consumes the search library's event stream (`caspo_lite.tui.app.make_app`)."""
