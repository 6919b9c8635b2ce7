"""Reading a request body as JSON: size limits, gzip, any Content-Type."""
import codecs
import zlib

import orjson
from flask import current_app, request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.wsgi import get_content_length

from .errors import APIError

_GZIP = 16 + zlib.MAX_WBITS
_DECODERS = {"gzip": _GZIP, "x-gzip": _GZIP, "deflate": zlib.MAX_WBITS}
_GZIP_MAGIC = b"\x1f\x8b"
# A JSON text never starts with these bytes, so a BOM names the encoding.
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def read_json_body():
    """The decoded JSON body; 413 past MAX_CONTENT_LENGTH (sent or inflated), else 400."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    try:
        data = request.get_data(cache=False)
        if limit is not None and len(data) >= limit and get_content_length(request.environ) is None:
            # A streamed (chunked) body is cut at the limit without a word:
            # one more byte from the server's stream means it was longer.
            if request.environ["wsgi.input"].read(1):
                raise RequestEntityTooLarge()
    except RequestEntityTooLarge:
        raise
    except (ClientDisconnected, OSError) as exc:
        raise APIError(400, "The request body was cut off before it was complete.") from exc
    for encoding in reversed(_content_encodings()):
        data = _inflate(data, _DECODERS[encoding], limit)
    if data.startswith(_GZIP_MAGIC):
        # `curl --data-binary @report.json.gz` without a Content-Encoding header.
        data = _inflate(data, _GZIP, limit)
    data = _utf8(data)
    if not data.strip():
        raise APIError(400, "The request body is empty; send a JSON document.")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        legacy = _legacy_text(data)
        if legacy is None:
            raise APIError(400, f"The request body is not valid JSON: {exc}") from exc
    try:
        return orjson.loads(legacy)
    except orjson.JSONDecodeError as exc:
        raise APIError(400, f"The request body is not valid JSON: {exc}") from exc


def _legacy_text(data):
    """A body that is not UTF-8, read as ISO-8859-1; None when it is UTF-8.

    Windows PowerShell 5.1 sends a string body as ISO-8859-1 unless the
    Content-Type names a charset, so a report with an accented character in
    a description arrives as bytes that are not UTF-8. Such a body is read as
    that encoding; a body that is valid UTF-8 is never re-read.
    """
    if request.mimetype_params.get("charset"):
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")
    return None


def _content_encodings():
    """The codings applied to the body, in the order they were applied."""
    header = request.headers.get("Content-Encoding", "")
    codings = [c.strip().lower() for c in header.split(",")]
    codings = [c for c in codings if c not in ("", "identity")]
    for coding in codings:
        if coding not in _DECODERS:
            raise APIError(415, f"Unsupported Content-Encoding {coding!r}; send gzip or none.")
    return codings


def _inflate(data, wbits, limit):
    """Decompress at most ``limit`` bytes; never holds more than that.

    Concatenated gzip members (``cat a.gz b.gz``) are one stream, as gunzip
    reads them; ``deflate`` is taken zlib-wrapped or raw, as clients send both.
    """
    out = bytearray()
    while True:
        decoder = zlib.decompressobj(wbits)
        try:
            out += decoder.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            if wbits == zlib.MAX_WBITS and not out:
                return _inflate(data, -zlib.MAX_WBITS, limit)
            raise APIError(400, f"The request body is not valid compressed data: {exc}") from exc
        if len(out) > limit or decoder.unconsumed_tail:
            raise RequestEntityTooLarge()
        if not decoder.eof:
            raise APIError(400, "The compressed request body is truncated.")
        data = decoder.unused_data
        if not data.strip(b"\x00"):
            return bytes(out)
        if wbits != _GZIP:
            raise APIError(400, "The compressed request body has data after its end.")


def _utf8(data):
    """The body as UTF-8: a byte-order mark is dropped, UTF-16/32 re-encoded,
    and a charset named in the Content-Type (other than UTF-8) honoured."""
    charset = request.mimetype_params.get("charset", "").strip().lower()
    if charset and not data.startswith(tuple(bom for bom, _ in _BOMS)):
        try:
            codec = codecs.lookup(charset).name
        except LookupError:
            raise APIError(415, f"Unsupported charset {charset!r}; send UTF-8.") from None
        if codec != "utf-8":
            try:
                return data.decode(codec).encode("utf-8", "surrogatepass")
            except UnicodeError as exc:
                raise APIError(400, f"The request body is not valid {charset}: {exc}") from exc
    for bom, codec in _BOMS:
        if data.startswith(bom):
            if codec == "utf-8":
                return data[len(bom):]
            try:
                return data.decode(codec).encode("utf-8")
            except UnicodeError as exc:
                raise APIError(400, f"The request body is not valid {codec.upper()}: {exc}") from exc
    return data
