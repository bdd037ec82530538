from django.contrib import admin
from waffle.admin import FlagAdmin as WaffleFlagAdmin

from gpuadmin.models import Flag

admin.site.site_header = "gpuadmin"
admin.site.site_title = "gpuadmin"
admin.site.index_title = "GPU fleet administration"


@admin.register(Flag)
class FlagAdmin(WaffleFlagAdmin):
    filter_horizontal = ["groups", "accounts"]
    raw_id_fields = ["users"]
    list_display = [*WaffleFlagAdmin.list_display, "employee_accounts"]
