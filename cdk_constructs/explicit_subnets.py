"""Subnet CIDRs given by the operator instead of computed by CDK (the sample's parameters are CIDR lists)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jsii
from aws_cdk import aws_ec2 as ec2


@jsii.implements(ec2.IIpAddresses)
class ExplicitSubnetCidrs:
    """Allocates each subnet group's CIDRs, in availability-zone order, from `cidrs[group name]`."""

    def __init__(self, vpc_cidr: str, cidrs: Mapping[str, Sequence[str]]) -> None:
        self._vpc_cidr = vpc_cidr
        self._cidrs = cidrs

    def allocate_vpc_cidr(self) -> ec2.VpcIpamOptions:
        return ec2.VpcIpamOptions(cidr_block=self._vpc_cidr)

    def allocate_subnets_cidr(self, *, requested_subnets: Sequence[Any], vpc_cidr: str) -> ec2.SubnetIpamOptions:
        used: dict[str, int] = {}
        allocated = []
        for request in requested_subnets:
            group = request.configuration.name
            index = used.get(group, 0)
            used[group] = index + 1
            allocated.append(ec2.AllocatedSubnet(cidr=self._cidrs[group][index]))
        return ec2.SubnetIpamOptions(allocated_subnets=allocated)
