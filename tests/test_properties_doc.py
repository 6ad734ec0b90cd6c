"""docs/properties.md is generated from the property files and must match them."""

import os

from recbole_speeder.properties_doc import render
from recbole_speeder.schema import annotated_keys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_properties_page_matches_the_property_files():
    with open(os.path.join(ROOT, "docs", "properties.md"), encoding="utf-8") as f:
        page = f.read()
    assert page == render(), "docs/properties.md is stale: python -m recbole_speeder.properties_doc > docs/properties.md"


def test_a_key_s_meaning_joins_its_continuation_lines(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("# a section\n"
                    "a: 1        # (int >= 1) First line\n"
                    "            #   and its second.\n"
                    "b: ~        # (str)\n"
                    "c: [x]      # no annotation\n"
                    "            #   not b's\n")
    assert annotated_keys(str(path)) == [("a", "int >= 1", "First line and its second."), ("b", "str", "")]
