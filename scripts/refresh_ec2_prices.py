#!/usr/bin/env python3
"""Refresh the EC2 on-demand prices of bbb_on_aws/prices.json from the AWS Price List Query API.

Needs AWS credentials allowed `pricing:GetProducts` (the API answers in us-east-1 for every region). Each
instance type already in the table for the given regions (plus any given with --type) is looked up as
on-demand Linux, shared tenancy, no pre-installed software, and written back as [price, "P"], source "P"
naming the API and today's date. A type the API does not price in a region is reported and left as it was.

    .venv/bin/python scripts/refresh_ec2_prices.py --region eu-west-1 --region us-east-1 [--type c7g.2xlarge]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bbb_on_aws.cost import dump_prices

PRICES = Path(__file__).resolve().parent.parent / "bbb_on_aws" / "prices.json"
SOURCE = "P"


def filters(instance_type: str, region: str) -> list[dict[str, str]]:
    wanted = {
        "instanceType": instance_type,
        "regionCode": region,
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
        "licenseModel": "No License required",
    }
    return [{"Type": "TERM_MATCH", "Field": field, "Value": value} for field, value in wanted.items()]


def on_demand_hourly(pricing: Any, instance_type: str, region: str) -> float | None:
    """The USD hourly on-demand price, or None when the API has no single such product."""
    response = pricing.get_products(ServiceCode="AmazonEC2", Filters=filters(instance_type, region), MaxResults=10)
    prices = set()
    for item in response["PriceList"]:
        product = json.loads(item) if isinstance(item, str) else item
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term["priceDimensions"].values():
                if dimension.get("unit") == "Hrs" and float(dimension["pricePerUnit"]["USD"]) > 0:
                    prices.add(float(dimension["pricePerUnit"]["USD"]))
    return prices.pop() if len(prices) == 1 else None


def refresh(table: dict[str, Any], regions: list[str], extra: list[str], pricing: Any, today: str) -> list[str]:
    """Updates `table` in place; returns one line per type that could not be priced."""
    problems = []
    for region in regions:
        if region not in table["regions"]:
            problems.append(f"{region}: not in the table (add the region's other figures first)")
            continue
        ec2 = table["regions"][region]["ec2"]
        for instance_type in sorted(set(ec2) | set(extra)):
            price = on_demand_hourly(pricing, instance_type, region)
            if price is None:
                problems.append(f"{region} {instance_type}: no single on-demand Linux price from the API; kept")
                continue
            ec2[instance_type] = [price, SOURCE]
    table["sources"][SOURCE] = f"AWS Price List Query API (pricing:GetProducts, AmazonEC2 on-demand Linux), {today}"
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", action="append", required=True, help="a region of the table (repeatable)")
    parser.add_argument("--type", action="append", default=[], help="also price this instance type (repeatable)")
    args = parser.parse_args(argv)
    table = json.loads(PRICES.read_text())
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    problems = refresh(table, args.region, args.type, boto3.client("pricing", region_name="us-east-1"), today)
    PRICES.write_text(dump_prices(table))
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
