from django.urls import path

from provisioning.api import disks, views

urlpatterns = [
    path("linode/instances", views.InstanceList.as_view(), name="instances"),
    path("linode/instances/<int:instance_id>", views.InstanceDetail.as_view(), name="instance"),
    path("linode/instances/<int:instance_id>/ips", views.InstanceIps.as_view(), name="instance-ips"),
    path("linode/instances/<int:instance_id>/boot", views.InstanceBoot.as_view(), name="instance-boot"),
    path("linode/instances/<int:instance_id>/reboot", views.InstanceReboot.as_view(), name="instance-reboot"),
    path(
        "linode/instances/<int:instance_id>/shutdown",
        views.InstanceShutdown.as_view(),
        name="instance-shutdown",
    ),
    path("linode/instances/<int:instance_id>/resize", views.InstanceResize.as_view(), name="instance-resize"),
    path(
        "linode/instances/<int:instance_id>/rebuild", views.InstanceRebuild.as_view(), name="instance-rebuild"
    ),
    path(
        "linode/instances/<int:instance_id>/password",
        views.InstancePassword.as_view(),
        name="instance-password",
    ),
    path(
        "linode/instances/<int:instance_id>/disks/<int:disk_id>/password",
        disks.DiskPassword.as_view(),
        name="instance-disk-password",
    ),
    path("linode/instances/<int:instance_id>/disks", disks.DiskList.as_view(), name="instance-disks"),
    path(
        "linode/instances/<int:instance_id>/disks/<int:disk_id>",
        disks.DiskDetail.as_view(),
        name="instance-disk",
    ),
    path(
        "linode/instances/<int:instance_id>/disks/<int:disk_id>/resize",
        disks.DiskResize.as_view(),
        name="instance-disk-resize",
    ),
    path(
        "linode/instances/<int:instance_id>/disks/<int:disk_id>/clone",
        disks.DiskClone.as_view(),
        name="instance-disk-clone",
    ),
    path("linode/instances/<int:instance_id>/configs", disks.ConfigList.as_view(), name="instance-configs"),
    path(
        "linode/instances/<int:instance_id>/configs/<int:config_id>",
        disks.ConfigDetail.as_view(),
        name="instance-config",
    ),
    path("account/events", views.EventList.as_view(), name="events"),
    path("account/events/<int:event_id>", views.EventDetail.as_view(), name="event"),
]
