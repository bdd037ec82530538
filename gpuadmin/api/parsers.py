"""The one parser of request bodies: JSON, read by gpuadmin.api.inputs' rules (depth, finite numbers,
no control characters). A subclass of DRF's JSONParser, so DRF still hands it the whole body through
`request.body`, where Django's DATA_UPLOAD_MAX_MEMORY_SIZE applies (the middleware's limit is lower).
"""

from rest_framework.parsers import JSONParser

from gpuadmin.api.errors import InputRefused
from gpuadmin.api.inputs import load_json

BODY = "The request body"


class LinodeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding") or "utf-8"
        try:
            text = stream.read().decode(encoding)
        except (UnicodeDecodeError, LookupError):
            raise InputRefused(f"{BODY} is not valid {encoding} text.") from None
        # DRF's words for a body that is not JSON, which clients may already match on.
        return load_json(text, what=BODY, not_json="JSON parse error", explain=True)
