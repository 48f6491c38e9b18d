"""scripts/refresh_ec2_prices.py against a Stubber for the Price List API (no moto for `pricing`): the exact
filters sent, what is written back, and what is kept when the API has no single price."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import boto3
from botocore.stub import Stubber

from bbb_on_aws.cost import PRICES, dump_prices

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("refresh_ec2_prices", ROOT / "scripts" / "refresh_ec2_prices.py")
assert spec is not None and spec.loader is not None
refresh_ec2_prices = importlib.util.module_from_spec(spec)
spec.loader.exec_module(refresh_ec2_prices)


def product(price: str) -> str:
    return json.dumps(
        {
            "product": {"attributes": {"instanceType": "x"}},
            "terms": {
                "OnDemand": {
                    "SKU.JRTCKXETXF": {
                        "priceDimensions": {
                            "SKU.JRTCKXETXF.6YS6EN2CT7": {"unit": "Hrs", "pricePerUnit": {"USD": price}}
                        }
                    }
                }
            },
        }
    )


def test_refresh_writes_api_prices_and_keeps_what_it_cannot_price():
    table = {"sources": {"A": "recalled"}, "regions": {"eu-west-1": {"ec2": {"t3.small": [0.0228, "A"]}}}}
    pricing = boto3.client("pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(pricing) as stub:
        for instance_type, answer in (("c7g.large", [product("0.0816000000")]), ("t3.small", [])):
            stub.add_response(
                "get_products",
                {"PriceList": answer, "FormatVersion": "aws_v1"},
                {
                    "ServiceCode": "AmazonEC2",
                    "MaxResults": 10,
                    "Filters": [
                        {"Type": "TERM_MATCH", "Field": field, "Value": value}
                        for field, value in (
                            ("instanceType", instance_type),
                            ("regionCode", "eu-west-1"),
                            ("operatingSystem", "Linux"),
                            ("tenancy", "Shared"),
                            ("preInstalledSw", "NA"),
                            ("capacitystatus", "Used"),
                            ("licenseModel", "No License required"),
                        )
                    ],
                },
            )
        problems = refresh_ec2_prices.refresh(table, ["eu-west-1", "ap-south-1"], ["c7g.large"], pricing, "2026-12-06")
        stub.assert_no_pending_responses()
    assert table["regions"]["eu-west-1"]["ec2"] == {"c7g.large": [0.0816, "P"], "t3.small": [0.0228, "A"]}
    assert table["sources"]["P"].endswith("2026-12-06")
    assert problems == [
        "eu-west-1 t3.small: no single on-demand Linux price from the API; kept",
        "ap-south-1: not in the table (add the region's other figures first)",
    ]


def test_the_committed_table_is_in_the_form_the_script_writes():
    text = PRICES.read_text()
    assert dump_prices(json.loads(text)) == text
