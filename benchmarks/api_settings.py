"""Settings for bench_api's server: the project's settings plus a floor endpoint to compare against."""

from gpuadmin.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.api_urls"
