"""The settings page speaks in words (issue 32, row 10): every field has a title, the code's names stay in tooltips
and input names, and an explanation's mention of a setting reads as its title."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from boneage.web.field_words import explanations_in_words, in_words, title

SNAKE = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b")


class VisibleText(HTMLParser):
    """The text a person reads: no attributes, no script or style."""

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        self.skipping += tag in ("script", "style")

    def handle_endtag(self, tag):
        self.skipping -= tag in ("script", "style")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    return " ".join(parser.parts)


@pytest.mark.django_db
def test_the_settings_page_shows_no_snake_case_name_to_a_person(client, owner, project):
    client.force_login(owner)
    page = client.get(f"/projects/{project.pk}/settings/").content.decode()
    assert SNAKE.findall(visible_text(page).replace(owner.username, "")) == []  # a username is what it is
    assert "Smallest gap (months)" in page and 'title="model_vs_label.min_months"' in page  # the name, on hover
    assert 'name="model_vs_label.min_months"' in page  # the form still posts the code's names


@pytest.mark.django_db
def test_the_review_rules_come_with_their_words(client, owner, project):
    client.force_login(owner)
    words = client.get(f"/api/projects/{project.pk}/review-settings/").json()["words"]
    assert words["model_vs_label"]["title"] == "Model vs label"
    assert words["model_vs_label"]["titles"]["min_months"] == "Smallest gap (months)"
    assert SNAKE.findall(words["label_vs_label"]["summary"]) == []


def test_a_setting_named_in_a_sentence_reads_as_its_title():
    assert in_words("differ by more than max_months.") == "differ by more than “Largest spread (months)”."
    assert title("model_unsure.max_std_months") == "Std above (months)" and title("something_new") == "Something new"
    assert explanations_in_words({"r": {"summary": "x", "priority": "a / min_dice"}})["r"]["priority"] == "a / min_dice"
