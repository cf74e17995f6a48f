"""Membership changes reach the user's open sockets at once, whatever path changed them (the studies actions,
the members API, the admin, a cascade): the sockets re-check their access (ProjectConsumer.membership_changed)."""
from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from boneage.live.events import send_to_user
from boneage.studies.models import Membership


def _announce(membership: Membership, role: str | None) -> None:
    """The new role travels with the message (None: removed), so a socket acts on it without a database round trip:
    under load that round trip queued behind the web process's few database threads while the socket went on
    forwarding the project's events (one arrived 3.4 s after a removal; issue 32, row 13)."""
    user_id, project_id = membership.user_id, membership.project_id
    transaction.on_commit(lambda: send_to_user(user_id, {"type": "membership.changed", "project": project_id,
                                                         "role": role}))


@receiver(post_save, sender=Membership, dispatch_uid="live-membership-saved")
def membership_saved(sender, instance: Membership, created: bool, **kwargs) -> None:
    if not created:  # a new membership has no open socket yet: connect() would have refused it
        _announce(instance, instance.role)


@receiver(post_delete, sender=Membership, dispatch_uid="live-membership-deleted")
def membership_deleted(sender, instance: Membership, **kwargs) -> None:
    _announce(instance, None)
