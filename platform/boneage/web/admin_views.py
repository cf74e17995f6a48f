"""Server-rendered administration pages: create a project, its members, its settings (forms work without JS)."""
from __future__ import annotations

import functools

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from rest_framework.exceptions import NotFound, PermissionDenied

from boneage.modeling import defaults as training
from boneage.modeling.actions import ModelingError, active_version
from boneage.modeling.intervals import calibration_warning
from boneage.review import rules
from boneage.review.actions import ReviewError, do_update_settings
from boneage.studies.access import check_project
from boneage.studies.actions import MembershipError, do_create_project, do_remove_member, do_set_role, do_update_project
from boneage.studies.members import check_role, do_add_member
from boneage.studies.models import Membership, Project, Role
from boneage.web.field_words import in_words, title


def project_admin_page(view):
    """Pages for project admins: outsiders get the 404 page, other members a 403 page that says why."""
    @functools.wraps(view)
    def wrapped(request, project_id: int):
        try:
            project, role = check_project(request.user, project_id, ("admin",))
        except NotFound:
            raise Http404("No such project.")
        except PermissionDenied as refused:
            return render(request, "refused.html", {"reason": str(refused)}, status=403)
        return view(request, project, role)

    return login_required(wrapped)


def _months(raw, name: str, errors: dict) -> float | None:
    try:
        return float(raw)
    except (TypeError, ValueError):
        errors[name] = f"Enter a number of months, not {raw!r}."
        return None


@login_required
@require_POST
def project_create(request):
    name = request.POST.get("name", "").strip()
    if not name:
        messages.error(request, "A project needs a name.")
    elif Project.objects.filter(name=name).exists():
        messages.error(request, f"A project named {name!r} exists already.")
    else:
        project = do_create_project(request.user, name, description=request.POST.get("description", "").strip())
        messages.success(request, f"Created {project.name}; you are its admin. Add members here.")
        return redirect("members", project_id=project.pk)
    return redirect("projects")


@project_admin_page
def members_page(request, project, role):
    add_error = None
    if request.method == "POST":
        add_error = _change_members(request, project)
        if add_error is None:
            return redirect("members", project_id=project.pk)
    memberships = project.memberships.select_related("user").order_by("user__username")
    return render(request, "members.html", {"project": project, "role": role, "nav": "members", "roles": Role.choices,
                                            "memberships": memberships, "add_error": add_error, "form": request.POST})


def _change_members(request, project) -> str | None:
    """One POST of the members page; the error of the add form (shown next to it) or None."""
    action = request.POST.get("action")
    try:
        if action == "add":
            data = {key: request.POST.get(key, "").strip() for key in ("username", "email", "role", "password")}
            field = "email" if "@" in data["username"] and not request.POST.get("create") else "username"
            data = {**data, field: data.pop("username")} if field == "email" else data
            added = do_add_member(project, {**data, "create": bool(request.POST.get("create"))}, actor=request.user)
            name = added.membership.user.username
            messages.success(request, f"Added {name} as {added.membership.role}.")
            if added.set_password_url:
                messages.info(request, f"Send {name} this one-time link to set a password: "
                                       f"{request.build_absolute_uri(added.set_password_url)}")
            return None
        user = get_user_model().objects.filter(pk=request.POST.get("user_id") or 0).first()
        if user is None or not Membership.objects.filter(project=project, user=user).exists():
            raise MembershipError(404, "not_a_member", "That person is not a member of this project.")
        if action == "role":
            membership = do_set_role(project, user, check_role(request.POST), actor=request.user)
            messages.success(request, f"{user.username} is now {membership.role}.")
        elif action == "remove":
            do_remove_member(project, user, actor=request.user)
            messages.success(request, f"Removed {user.username} from {project.name}.")
    except MembershipError as error:
        if action == "add":
            return error.detail
        messages.error(request, error.detail)
    return None


@project_admin_page
def settings_page(request, project, role):
    errors: dict[str, str] = {}
    if request.method == "POST" and request.POST.get("form") == "project":
        errors = _save_project(request, project)
    elif request.method == "POST" and request.POST.get("form") == "promotion":
        errors = _save_promotion(request, project)
    elif request.method == "POST" and request.POST.get("form") == "review":
        errors = _save_review(request, project)
    elif request.method == "POST" and request.POST.get("form") == "training":
        errors = _save_training(request, project)
    elif request.method == "POST" and request.POST.get("form") == "dicom":
        errors = _save_ae_title(request, project)
    if request.method == "POST" and not errors:
        messages.success(request, "Saved.")
        return redirect("project-settings", project_id=project.pk)
    current = rules.review_settings(project)
    review_fields = [
        {"rule": rule, "title": title(rule), "summary": in_words(rules.EXPLANATIONS[rule]["summary"]),
         "enabled": current[rule]["enabled"],
         "options": [{"name": f"{rule}.{option}", "title": title(option),
                      "value": request.POST.get(f"{rule}.{option}", value),
                      "help": in_words(rules.EXPLANATIONS[rule].get(option, "")), "bounds": rules.OPTION_BOUNDS[(rule, option)],
                      "error": in_words(errors.get(f"{rule}.{option}", "")) or None}
                     for option, value in current[rule].items() if option != "enabled"]}
        for rule in rules.RULES]
    return render(request, "project_settings.html", {
        "project": project, "role": role, "nav": "settings", "errors": errors, "review_fields": review_fields,
        "blind": current["blind"], "lease_minutes": current["lease_minutes"],
        "blind_help": in_words(rules.EXPLANATIONS["blind"]["summary"]),
        "lease_help": in_words(rules.EXPLANATIONS["lease_minutes"]["summary"]), "lease_title": title("lease_minutes"),
        "form": request.POST, "training_fields": _training_fields(request, project,
                                                                                                    errors),
        "interval_warning": calibration_warning(active_version(project.pk), project),
        "dicom_port": settings.DICOM_PORT})


def _training_fields(request, project, errors: dict[str, str]) -> list[dict]:
    """One row per training default: what the project sets (blank: the default, shown as a placeholder)."""
    current = training.training_defaults(project)
    rows = []
    for name in training.FIELDS:
        bounds = training.AUTO_RETRAIN_BOUNDS if name == training.AUTO_RETRAIN else training.NUMBERS.get(name)
        value = request.POST.get(name) if request.POST.get("form") == "training" else current.custom.get(name, "")
        fine, scratch = (_shown(current.platform[kind][name]) for kind in ("fine_tune", "from_scratch"))
        rows.append({"name": name, "title": title(name), "value": "" if value is None else value,
                     "help": in_words(training.HELP[name]),
                     "bounds": bounds, "choices": training.CHOICES.get(name), "error": in_words(errors.get(name, "")) or None,
                     "placeholder": fine if fine == scratch else f"{fine} / {scratch}",
                     "default": fine if fine == scratch else f"{fine} for a fine-tune, {scratch} from scratch"})
    return rows


def _shown(value) -> str:
    if value is None:
        return "no limit"
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _save_training(request, project) -> dict[str, str]:
    """All fields or none: the first bad one is named next to its field and nothing is stored."""
    try:
        training.do_update_training_defaults(project, {name: request.POST.get(name, "") for name in training.FIELDS},
                                             actor=request.user)
    except ModelingError as error:
        return {error.extra.get("field", "training"): error.detail}
    return {}


def _save_ae_title(request, project) -> dict[str, str]:
    """The DICOM node's called AE title for this project (do_update_project checks it, as for the API)."""
    try:
        do_update_project(project, {"ae_title": request.POST.get("ae_title", "")}, actor=request.user)
    except MembershipError as error:
        return {"ae_title": error.detail}
    return {}


def _save_project(request, project) -> dict[str, str]:
    errors: dict[str, str] = {}
    changes = {"name": request.POST.get("name", "").strip(), "description": request.POST.get("description", "").strip(),
               "min_age_months": _months(request.POST.get("min_age_months"), "min_age_months", errors),
               "max_age_months": _months(request.POST.get("max_age_months"), "max_age_months", errors)}
    if not changes["name"]:
        errors["name"] = "A project needs a name."
    level = request.POST.get("interval_level", "").strip()
    if level:  # checked by the API's own serializer, so page and API agree
        from boneage.studies.serializers import ProjectUpdateSerializer

        form = ProjectUpdateSerializer(data={"interval_level": level}, partial=True)
        if form.is_valid():
            changes["interval_level"] = form.validated_data["interval_level"]
        else:
            errors["interval_level"] = " ".join(str(e) for e in form.errors["interval_level"])
    if errors:
        return errors
    try:
        do_update_project(project, changes, actor=request.user)
    except MembershipError as error:
        errors["name" if error.code == "name_taken" else "max_age_months"] = error.detail
    return errors


PROMOTION_FIELDS = ("promotion_min_held_out", "promotion_confidence", "promotion_min_gain_months")


def _save_promotion(request, project) -> dict[str, str]:
    """The promotion gate's settings, checked by the API's own serializer so page and API agree."""
    from boneage.studies.serializers import ProjectUpdateSerializer

    data = {"auto_promote": bool(request.POST.get("auto_promote")),
            **{name: request.POST.get(name, "").strip() for name in PROMOTION_FIELDS}}
    form = ProjectUpdateSerializer(data=data, partial=True)
    if not form.is_valid():
        return {name: " ".join(str(e) for e in problems) for name, problems in form.errors.items()}
    do_update_project(project, form.validated_data, actor=request.user)
    return {}


def _save_review(request, project) -> dict[str, str]:
    """Each field is checked on its own first, so its error can stand next to it; then one change for all."""
    errors: dict[str, str] = {}
    patch: dict = {"blind": bool(request.POST.get("blind"))}
    lease = request.POST.get("lease_minutes", "")
    patch["lease_minutes"] = int(lease) if lease.isdigit() else lease
    for rule in rules.RULES:
        patch[rule] = {"enabled": bool(request.POST.get(f"{rule}.enabled"))}
        for option in rules.DEFAULTS[rule]:
            if option != "enabled":
                raw = request.POST.get(f"{rule}.{option}", "")
                try:
                    patch[rule][option] = float(raw)
                except ValueError:
                    errors[f"{rule}.{option}"] = f"Enter a number, not {raw!r}."
    current = rules.review_settings(project)
    for key, value in patch.items():
        pieces = value.items() if isinstance(value, dict) else [(None, value)]
        for option, option_value in pieces:
            name = f"{key}.{option}" if option else key
            if name in errors:
                continue
            try:
                rules.merge_settings(current, {key: {option: option_value}} if option else {key: option_value})
            except rules.SettingsError as invalid:
                errors[name] = str(invalid)
    if not errors:
        try:
            do_update_settings(project, request.user, patch)
        except ReviewError as error:
            errors["review"] = error.detail
    return errors
