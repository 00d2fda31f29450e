"""`prefswift web`: the pages (static/) and their server (app.py), run state from prefswift.run.state."""
