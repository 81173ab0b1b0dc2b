"""Company names and credit codes normalise so that spelling variants match."""

from __future__ import annotations

import pytest

from coordinator.domain.names import (
    PROVINCES,
    Places,
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


# --- administrative prefixes -------------------------------------------------------------------

HANGZHOU = Places.of(["Hangzhou", "杭州", "杭州市", "Hangchow", "西湖区", "Xihu", "萧山区",
                      "Xiaoshan"]) | PROVINCES


@pytest.mark.parametrize(
    "variants",
    [
        ["浙江省中恒建设集团有限公司", "中恒建设集团有限公司", "浙江中恒建设集团有限公司",
         "浙江省中恒建设有限公司", "中恒建设集团"],
        ["杭州市华建建设有限公司", "杭州华建建设有限公司", "华建建设有限公司",
         "浙江省杭州市华建建设有限公司", "浙江杭州华建建设有限公司"],
        ["杭州市西湖区天城电力工程有限公司", "西湖区天城电力工程有限公司", "天城电力工程有限公司",
         "杭州西湖天城电力工程有限公司"],
        ["Zhejiang Zhongheng Construction Group Co., Ltd.", "Zhongheng Construction Group Co Ltd",
         "ZHEJIANG PROVINCE ZHONGHENG CONSTRUCTION GROUP CO., LTD.",
         "Zhejiang Zhongheng Construction Co., Ltd.", "Zhongheng Construction Company Limited"],
        ["Hangzhou Huajian Construction Co., Ltd.", "Hangzhou City Huajian Construction Co Ltd",
         "Huajian Construction Co., Ltd.", "Zhejiang Hangzhou Huajian Construction Co., Ltd.",
         "Hangchow Huajian Construction Company Limited"],
        ["Beijing Urban Construction Group Co., Ltd.", "Urban Construction Group Co., Ltd."],
        ["广西壮族自治区桂通工程有限公司", "广西桂通工程有限公司", "桂通工程有限公司"],
    ],
)
def test_administrative_prefixes_are_dropped_from_enterprise_names(variants: list[str]) -> None:
    keys = {normalise_company_name(v, HANGZHOU) for v in variants}
    assert len(keys) == 1, keys
    assert len(keys.pop()) >= 2


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("杭州市交通运输局", "宁波市交通运输局"),          # organs of government: no legal form
        ("Hangzhou Transport Bureau", "Ningbo Transport Bureau"),
        ("Acme (Hangzhou) Ltd", "Acme (Ningbo) Ltd"),         # a branch's place stays
        ("杭州华建建设有限公司", "杭州华通建设有限公司"),
        ("浙江有限公司", "江苏有限公司"),                       # nothing but a place: kept
    ],
)
def test_places_that_tell_parties_apart_stay(a: str, b: str) -> None:
    assert normalise_company_name(a, HANGZHOU) != normalise_company_name(b, HANGZHOU)


def test_places_of_a_registry() -> None:
    places = Places.of(["杭州市", "Hangzhou City", "内蒙古自治区", "Inner Mongolia"])
    assert places.cjk == {"杭州", "内蒙古"}
    assert places.latin == {("hangzhou",), ("inner", "mongolia")}
    # Without the registry, a city prefix stays (only provinces are known by default).
    assert normalise_company_name("杭州华建建设有限公司") == "杭州华建建设"
    assert normalise_company_name("浙江华建建设有限公司") == "华建建设"
