"""Plumbing shared by every endpoint of the public API (Linode API v4 subset).

Authentication by personal access token, scope checks, the page envelope, the X-Filter header,
rate limits and the one place that turns exceptions into Linode's error body. Endpoints live in
each app's `api/` package and are composed under /v4 and /v4beta by `gpuadmin.api.urls`.
"""
