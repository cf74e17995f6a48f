"""Adding people to a project: find (or, for site staff, create) the account, then the membership actions.

Every membership row change goes through `actions.do_set_role` / `actions.do_remove_member`, which keep the
last-admin rule and write the audit event; this module only resolves who is meant.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from boneage.audit.actions import do_record
from boneage.studies.actions import MembershipError, do_set_role
from boneage.studies.models import Membership, Project, Role


@dataclass
class AddedMember:
    membership: Membership
    created_account: bool = False
    set_password_url: str | None = None  # one-time: the token dies once the password is set


def check_role(data: Mapping) -> str:
    role = data.get("role")
    if role not in Role.values:
        raise MembershipError(400, "unknown_role", f"Unknown role {role!r}; the roles are: {', '.join(Role.values)}.")
    return str(role)


def set_password_path(user) -> str:
    return f"/accounts/reset/{urlsafe_base64_encode(force_bytes(user.pk))}/{default_token_generator.make_token(user)}/"


def find_account(data: Mapping):
    """The existing account named by "username" or "email" (case-insensitive), or a clear 400."""
    User = get_user_model()
    username, email = str(data.get("username") or "").strip(), str(data.get("email") or "").strip()
    if username:
        user = User.objects.filter(username__iexact=username, is_active=True).first()
        if user is None:
            raise MembershipError(400, "unknown_user", f"No account is called {username!r}.")
        return user
    if email:
        users = list(User.objects.filter(email__iexact=email, is_active=True)[:2])
        if not users:
            raise MembershipError(400, "unknown_user", f"No account has the email address {email!r}.")
        if len(users) > 1:
            raise MembershipError(400, "ambiguous_email", f"Several accounts share {email!r}: add the person by username.")
        return users[0]
    raise MembershipError(400, "user_required", "Name the person to add: send \"username\" or \"email\".")


def _create_account(data: Mapping, actor, project: Project):
    User = get_user_model()
    username = str(data.get("username") or "").strip()
    email = str(data.get("email") or "").strip()
    password = data.get("password") or None
    if not username:
        raise MembershipError(400, "username_required", "A new account needs a \"username\".")
    try:
        User.username_validator(username)
    except ValidationError as invalid:
        raise MembershipError(400, "invalid_username", " ".join(invalid.messages))
    if len(username) > 150:
        raise MembershipError(400, "invalid_username", "A username has at most 150 characters.")
    if User.objects.filter(username__iexact=username).exists():
        raise MembershipError(400, "username_taken", f"An account called {username!r} exists already: "
                              "add it without \"create\".")
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise MembershipError(400, "invalid_email", f"{email!r} is not an email address.")
    user = User(username=username, email=email)
    if password is not None:
        try:
            validate_password(str(password), user)
        except ValidationError as weak:
            raise MembershipError(400, "weak_password", " ".join(weak.messages))
        user.set_password(str(password))
    else:
        user.set_unusable_password()
    user.save()
    do_record("account.created", user, actor=actor, project=project,
              after={"user": user.username, "user_id": user.pk, "email": email, "password_set": password is not None})
    return user


def do_add_member(project: Project, data: Mapping, *, actor) -> AddedMember:
    """POST /members/: an existing account by username or email; with "create" a new one (site staff only)."""
    role = check_role(data)
    create = data.get("create") in (True, "true", "1", "on")
    if create and not getattr(actor, "is_staff", False):
        raise MembershipError(403, "staff_only", "Only site staff may create accounts; add an existing account "
                              "by username or email.")
    with transaction.atomic():
        user = _create_account(data, actor, project) if create else find_account(data)
        existing = Membership.objects.filter(project=project, user=user).first()
        if existing is not None:
            raise MembershipError(409, "already_member", f"{user.username} is already {existing.role} of "
                                  f"{project.name}; change the role instead.")
        membership = do_set_role(project, user, role, actor=actor)
    link = set_password_path(user) if create and not user.has_usable_password() else None
    return AddedMember(membership, created_account=create, set_password_url=link)
