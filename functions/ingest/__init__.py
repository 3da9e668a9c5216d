"""Ingest: the front door. Devices post CloudEvents (or the seed's REST shapes) over HTTP;
an event is answered 2xx only once Kafka holds it."""

from functions.ingest.app import create_app
from functions.ingest.settings import IngestSettings

__all__ = ["IngestSettings", "create_app"]
