"""Company names and credit codes normalise so that spelling variants match."""

from __future__ import annotations

import pytest

from coordinator.domain.names import (
    normalise_company_name,
    normalise_credit_code,
    normalise_department,
)


@pytest.mark.parametrize(
    "variants",
    [
        [
            "ACME Co., Ltd.",
            "Acme Company Limited",
            "acme co ltd",
            "ＡＣＭＥ　Ｃｏ．，Ｌｔｄ．",  # full width
            "Acme Ltd",
            "Acme Inc.",
            "Acme Corporation",
            " acme,  corp ",
            "Acme Group Co., Ltd.",
        ],
        ["Bridge & Tunnel Co Ltd", "BRIDGE AND TUNNEL COMPANY LIMITED", "Bridge&Tunnel Inc"],
        [
            "北京建工集团有限责任公司",
            "北京建工集团",
            "北京建工(集团)有限责任公司",
            "北京建工（集团）有限责任公司",
            "北京建工有限公司",
            "北京建工股份有限公司",
            " 北京 建工 集团 ",
        ],
        ["中铁建设集团（北京）有限公司", "中铁建设集团(北京)有限公司", "中铁建设集团北京有限公司"],
        ["华为技术有限公司", "华为技术股份公司", "华为技术公司"],
    ],
)
def test_variants_share_a_key(variants: list[str]) -> None:
    keys = {normalise_company_name(v) for v in variants}
    assert len(keys) == 1, keys
    assert keys.pop() != ""


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Acme Co., Ltd.", "Acme Bridge Co., Ltd."),
        ("Costco", "Cost"),  # "co" is dropped as a whole word only
        ("北京建工", "北京城建"),
        ("Acme (Shanghai) Ltd", "Acme (Beijing) Ltd"),
    ],
)
def test_distinct_companies_stay_distinct(a: str, b: str) -> None:
    assert normalise_company_name(a) != normalise_company_name(b)


def test_never_reduced_to_nothing() -> None:
    assert normalise_company_name("Group") == "group"
    assert normalise_company_name("Limited") == "limited"
    assert normalise_company_name("有限公司") == "有限公司"
    assert normalise_company_name("集团") == "集团"
    assert normalise_company_name(" ,.; ") == ""


def test_costco_keeps_its_co() -> None:
    assert normalise_company_name("Costco Wholesale Co") == "costcowholesale"


def test_credit_codes() -> None:
    assert normalise_credit_code(" 91110000 1000 1234 5x ") == "91110000100012345X"
    assert normalise_credit_code("９１１１-００００") == "91110000"
    assert normalise_credit_code("") is None
    assert normalise_credit_code("  ") is None
    assert normalise_credit_code(None) is None


def test_departments() -> None:
    assert normalise_department("Municipal Housing Bureau") == normalise_department(
        "municipal  housing-bureau"
    )
    assert normalise_department("住房和城乡建设局") == normalise_department(" 住房和城乡建设局 ")
