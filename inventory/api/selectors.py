"""Reads behind the public catalogue endpoints (regions, plans, images), shaped for one query a page.

Whether the caller may see GPU plans is decided by the caller (accounts.flags); these only apply it.
"""

from django.db.models import BooleanField, Exists, OuterRef, QuerySet, Value

from inventory.models import Host, Image, InstanceType, Region
from inventory.selectors import plan_available


def plans_visible(*, include_gpu: bool) -> QuerySet[InstanceType]:
    plans = InstanceType.objects.select_related("successor")
    return plans if include_gpu else plans.exclude(type_class=InstanceType.TypeClass.GPU)


def plan_visible(*, plan_id: str, include_gpu: bool) -> InstanceType | None:
    """A hidden GPU plan is as absent as a plan that does not exist."""
    return plans_visible(include_gpu=include_gpu).filter(pk=plan_id).first()


def regions_with_offers(*, include_gpu: bool) -> QuerySet[Region]:
    """Regions annotated with `offers_gpu`: it has GPU hosts in service and the caller may see GPU plans."""
    if not include_gpu:
        return Region.objects.annotate(offers_gpu=Value(False, output_field=BooleanField()))
    gpu_hosts = Host.objects.filter(region=OuterRef("pk"), kind=Host.Kind.GPU).exclude(
        state=Host.State.DISABLED
    )
    return Region.objects.annotate(offers_gpu=Exists(gpu_hosts))


def public_images() -> QuerySet[Image]:
    return Image.objects.filter(public=True)


def availability(*, include_gpu: bool, region_id: str | None = None) -> list[dict] | None:
    """Per region and visible GPU plan, whether one more instance fits now; None for an unknown region.

    Only GPU plans are listed, as Linode lists only its specialty plans here.
    """
    regions = list(Region.objects.all() if region_id is None else Region.objects.filter(pk=region_id))
    if region_id is not None and not regions:
        return None
    if not include_gpu:
        return []
    plans = list(InstanceType.objects.filter(type_class=InstanceType.TypeClass.GPU, deprecated=False))
    return [
        {"region": region.id, "plan": plan.id, "available": plan_available(plan=plan, region=region)}
        for region in regions
        for plan in plans
    ]
