from django.contrib import admin

from boneage.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the history is append-only through every interface, the admin included."""

    list_display = ("created_at", "actor", "verb", "object_type", "object_id", "project")
    list_filter = ("verb",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
