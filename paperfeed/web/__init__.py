"""The site: server-rendered pages, JSON API, Atom feeds (issue 4)."""

from paperfeed.web.app import create_app

__all__ = ["create_app"]
