"""Every write of billing: usage segments from provisioning's rows, invoices, tax rates, the GPU trial.

Billing sits above provisioning: it reads Instance and Job rows and never asks provisioning to call
it (no signals, no hooks). Usage therefore lags provisioning until `usage_sync` runs: the scheduled
task runs it every few minutes, and every invoice is built right after a sync of its account (the
account's balances do not wait: they rate what a sync would write, in memory).

Writes are set based: syncing a fleet or invoicing a month costs a bounded number of statements
(a few per chunk or batch of rows), never a few per account or per instance.
"""

from billing.services.invoices import (
    BillingRunReport,
    InvoiceRun,
    billing_run,
    invoice_finalize,
    invoice_generate,
    invoices_build,
)
from billing.services.promotions import promotion_grant_gpu_trial
from billing.services.tax_rates import tax_rate_refusal, tax_rate_save
from billing.services.usage import UsageSyncReport, usage_sync

__all__ = [
    "UsageSyncReport",
    "usage_sync",
    "InvoiceRun",
    "invoice_generate",
    "invoice_finalize",
    "invoices_build",
    "BillingRunReport",
    "billing_run",
    "tax_rate_refusal",
    "tax_rate_save",
    "promotion_grant_gpu_trial",
]
