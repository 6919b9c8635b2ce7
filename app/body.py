"""Reading a request body as JSON: size limits, gzip, any Content-Type."""
import zlib

import orjson
from flask import current_app, request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from .errors import APIError

_DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def read_json_body():
    """The decoded JSON body; 413 past MAX_CONTENT_LENGTH (sent or inflated), else 400."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    try:
        data = request.get_data(cache=False)
    except RequestEntityTooLarge:
        raise
    except (ClientDisconnected, OSError) as exc:
        raise APIError(400, "The request body was cut off before it was complete.") from exc
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        if encoding not in _DECODERS:
            raise APIError(415, f"Unsupported Content-Encoding {encoding!r}; send gzip or none.")
        data = _inflate(data, _DECODERS[encoding], limit)
    if not data.strip():
        raise APIError(400, "The request body is empty; send a JSON document.")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise APIError(400, f"The request body is not valid JSON: {exc}") from exc


def _inflate(data, wbits, limit):
    """Decompress at most ``limit`` bytes; never holds more than that."""
    decoder = zlib.decompressobj(wbits)
    try:
        out = decoder.decompress(data, limit + 1)
    except zlib.error as exc:
        raise APIError(400, f"The request body is not valid compressed data: {exc}") from exc
    if len(out) > limit or decoder.unconsumed_tail:
        raise RequestEntityTooLarge()
    if not decoder.eof:
        raise APIError(400, "The compressed request body is truncated.")
    return out
