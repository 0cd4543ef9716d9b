"""The status page: HTML pages, charts, badges, templates and static files."""
