

def test_binder_badge_and_citation_name_the_same_repository():
    from lazysignals.site import binder_url

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    slug = citation()["repository-code"].removeprefix("https://github.com/")
    assert f"mybinder.org/v2/gh/{slug}/HEAD" in readme, "README's Binder badge and CITATION.cff disagree on the repository"
    assert binder_url("00_setup").startswith(f"https://mybinder.org/v2/gh/{slug}/HEAD")
