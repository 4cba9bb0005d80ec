"""Sandbox providers: ``local`` (embedded default), ``docker``, and third parties' own."""
