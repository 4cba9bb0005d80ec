"""``aws``: one EC2 instance per trial, through boto3, reached over SSH.

Preset (``providers/aws.yaml``)::

    kind: aws
    region: us-east-1
    images: {default: ami-0123..., gpu-ubuntu: ami-0456...}   # per card snapshot
    instance_types: [c6i.xlarge, c5.xlarge]    # fallback order
    subnets: [subnet-aaa, subnet-bbb]          # fallback order (zones); unset = default VPC
    ssh_user: ubuntu
    ssh_cidr: 203.0.113.7/32                   # who may SSH in: this host (required)
    address: public                            # or private (a VPN / same VPC)
    disk_gb: 50                                # root volume size (optional)
    endpoint_url: null                         # e.g. a moto_server for tests

For each provider object (a run on one xdist worker) an EC2 key pair is imported from the
ephemeral public key, and a security group that allows only TCP 22 from ``ssh_cidr`` is
created; both are tagged and removed at the end (or by ``--ale-sweep``). Instances are
tagged ``ale-managed`` / ``ale-run-id`` / ``ale-expiry`` and start with
``InstanceInitiatedShutdownBehavior=terminate``, so a shutdown inside never leaves a
stopped instance. ``InsufficientInstanceCapacity`` (and the other capacity codes) fall
through to the next subnet and type; quota codes too (a smaller type may fit); when nothing
is left the trial gets a ``CapacityError`` / ``QuotaError`` (infrastructure: retried, then
reported as an error). Instances are terminated on release, always.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import boto3
from botocore.exceptions import ClientError
from pydantic import Field

from ..errors import ConfigError, InfrastructureError
from ..sandbox import SandboxSpec
from ..typed_options import GpuFlag
from .cloudinit import agent_user_entry, cloud_config
from .vm_base import MANAGED, CapacityError, Instance, QuotaError, VmOptions, VmProvider, sweepable

CAPACITY_CODES = {
    "InsufficientInstanceCapacity",
    "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity",
    "InsufficientCapacity",
    "Unsupported",  # the type is not offered in this zone
}
QUOTA_CODES = {"InstanceLimitExceeded", "VcpuLimitExceeded", "MaxSpotInstanceCountExceeded"}
LIVE_STATES = ["pending", "running", "stopping", "stopped"]


def _tags(labels: Mapping[str, str], name: str) -> list[dict[str, str]]:
    return [{"Key": "Name", "Value": name}, *({"Key": k, "Value": v} for k, v in labels.items())]


class AwsOptions(GpuFlag, VmOptions):
    """``providers/aws.yaml``."""

    ssh_user: str = "ubuntu"
    region: str | None = None
    #: e.g. a moto_server, for tests
    endpoint_url: str | None = None
    #: fallback order on capacity errors (``instance_type`` for one)
    instance_types: list[str] = Field(default_factory=list)
    instance_type: str = "t3.large"
    #: fallback order, one per zone; empty = the default VPC
    subnets: list[str] = Field(default_factory=list)
    #: who may SSH in: this host's address (required to start instances)
    ssh_cidr: str | None = None
    address: Literal["public", "private"] = "public"
    #: the root volume's size (unset: the AMI's)
    disk_gb: int | None = Field(None, gt=0)
    root_device: str = "/dev/sda1"
    #: instance user data instead of the cloud-config that makes ``agent_user``
    user_data: str | None = None
    group_delete_wait_s: float = 180


class AwsProvider(VmProvider):
    """EC2 instances from an AMI per snapshot."""

    name = "aws"
    capabilities: ClassVar[frozenset[str]] = frozenset({"linux"})
    Options = AwsOptions
    options: AwsOptions

    def __init__(self, options: AwsOptions | Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        session = boto3.session.Session(region_name=self.options.region)
        self.ec2 = session.client("ec2", endpoint_url=self.options.endpoint_url)
        self.types = list(self.options.instance_types or [self.options.instance_type])
        self.subnets: list[str | None] = list(self.options.subnets or [None])
        self.tag = f"ale-{uuid.uuid4().hex[:10]}"
        self.key_name: str | None = None
        self.groups: dict[str | None, str] = {}  # VPC id -> security group id
        self.run_id: str | None = None

    # -- per-run access: key pair and security group -----------------------------------
    def _access(self, spec: SandboxSpec, labels: Mapping[str, str], subnet: str | None) -> dict[str, Any]:
        if self.key_name is None:
            name = f"{self.tag}-key"
            self.ec2.import_key_pair(
                KeyName=name,
                PublicKeyMaterial=self.public_key.encode(),
                TagSpecifications=[{"ResourceType": "key-pair", "Tags": _tags(labels, name)}],
            )
            self.key_name = name
        vpc = self._vpc(subnet)
        if vpc not in self.groups:
            cidr = self.options.ssh_cidr
            if not cidr:
                raise ConfigError(
                    "aws preset: set `ssh_cidr` to this host's address (e.g. 203.0.113.7/32); "
                    "the security group allows SSH from there only"
                )
            name = f"{self.tag}-ssh-{len(self.groups)}"
            kwargs: dict[str, Any] = {"VpcId": vpc} if vpc else {}
            group = self.ec2.create_security_group(
                GroupName=name,
                Description="pytest-ale: SSH from the evaluating host only",
                TagSpecifications=[{"ResourceType": "security-group", "Tags": _tags(labels, name)}],
                **kwargs,
            )["GroupId"]
            self.ec2.authorize_security_group_ingress(
                GroupId=group,
                IpPermissions=[
                    {
                        "IpProtocol": "tcp",
                        "FromPort": 22,
                        "ToPort": 22,
                        "IpRanges": [{"CidrIp": str(cidr), "Description": "pytest-ale host"}],
                    }
                ],
            )
            self.groups[vpc] = group
        return {"KeyName": self.key_name, "SecurityGroupIds": [self.groups[vpc]]}

    def _vpc(self, subnet: str | None) -> str | None:
        if subnet is None:
            return None
        found = self.ec2.describe_subnets(SubnetIds=[subnet])["Subnets"]
        return found[0]["VpcId"] if found else None

    # -- the hooks ---------------------------------------------------------------------
    def create(self, spec: SandboxSpec, name: str, image: str, labels: dict[str, str]) -> Instance:
        self.run_id = spec.run_id
        tried: list[str] = []
        quota_only = True
        for subnet in self.subnets:
            access = self._access(spec, labels, subnet)
            for itype in self.types:
                try:
                    reply = self.ec2.run_instances(
                        **self._request(name, image, itype, subnet, labels, access)
                    )
                except ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code", "")
                    if code in CAPACITY_CODES or code in QUOTA_CODES:
                        quota_only = quota_only and code in QUOTA_CODES
                        tried.append(f"{itype} in {subnet or 'default subnet'}: {code}")
                        continue
                    raise InfrastructureError(f"aws: RunInstances failed: {exc}") from exc
                data = reply["Instances"][0]
                return Instance(data["InstanceId"], name, f"{subnet or 'default'}/{itype}", data=data)
        kind = QuotaError if quota_only else CapacityError
        raise kind("aws: no subnet/type could start an instance: " + "; ".join(tried))

    def _request(
        self, name: str, image: str, itype: str, subnet: str | None, labels: dict[str, str], access: dict
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "ImageId": image,
            "InstanceType": itype,
            "MinCount": 1,
            "MaxCount": 1,
            "InstanceInitiatedShutdownBehavior": "terminate",
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": _tags(labels, name)},
                {"ResourceType": "volume", "Tags": _tags(labels, name)},
            ],
            **access,
        }
        if subnet:
            request["SubnetId"] = subnet
        if self.options.disk_gb:
            request["BlockDeviceMappings"] = [
                {
                    "DeviceName": self.options.root_device,
                    "Ebs": {"VolumeSize": self.options.disk_gb, "DeleteOnTermination": True},
                }
            ]
        # the image's default user (the key pair's) and the agent's account
        request["UserData"] = self.options.user_data or cloud_config(
            ["default", agent_user_entry(self.agent_user)]
        )
        return request

    def wait_address(self, instance: Instance, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        delay = 0.2
        while True:
            reply = self.ec2.describe_instances(InstanceIds=[instance.id])
            data = reply["Reservations"][0]["Instances"][0]
            state = data["State"]["Name"]
            if state == "running":
                break
            if state != "pending" or time.monotonic() > deadline:
                raise InfrastructureError(f"aws: {instance.id} is {state}, not running ({timeout_s:.0f}s)")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        which = "PrivateIpAddress" if self.options.address == "private" else "PublicIpAddress"
        address = data.get(which) or data.get("PrivateIpAddress")
        if not address:
            raise InfrastructureError(f"aws: {instance.id} has no {which}")
        return str(address)

    def delete(self, instance: Instance) -> None:
        self.ec2.terminate_instances(InstanceIds=[instance.id])

    def list_managed(self) -> list[tuple[Instance, dict[str, str]]]:
        found = []
        pages = self.ec2.get_paginator("describe_instances").paginate(
            Filters=[
                {"Name": "tag-key", "Values": [MANAGED]},
                {"Name": "instance-state-name", "Values": LIVE_STATES},
            ]
        )
        for page in pages:
            for reservation in page["Reservations"]:
                for data in reservation["Instances"]:
                    tags = {t["Key"]: t["Value"] for t in data.get("Tags", [])}
                    found.append((Instance(data["InstanceId"], tags.get("Name", data["InstanceId"])), tags))
        return found

    def sweep(self, run_id: str | None = None) -> list[str]:
        removed = super().sweep(run_id)
        for pair in self.ec2.describe_key_pairs(Filters=[{"Name": "tag-key", "Values": [MANAGED]}])[
            "KeyPairs"
        ]:
            if sweepable({t["Key"]: t["Value"] for t in pair.get("Tags", [])}, run_id):
                self.ec2.delete_key_pair(KeyName=pair["KeyName"])
                removed.append(f"key pair {pair['KeyName']}")
        groups = self.ec2.describe_security_groups(Filters=[{"Name": "tag-key", "Values": [MANAGED]}])
        for group in groups["SecurityGroups"]:
            if sweepable({t["Key"]: t["Value"] for t in group.get("Tags", [])}, run_id):
                self._delete_group(group["GroupId"])
                removed.append(f"security group {group['GroupId']}")
        return removed

    def _delete_group(self, group: str, wait_s: float = 0.0) -> None:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self.ec2.delete_security_group(GroupId=group)
                return
            except ClientError as exc:  # still in use by a terminating instance
                if time.monotonic() > deadline:
                    raise InfrastructureError(f"aws: cannot delete security group {group}: {exc}") from exc
                time.sleep(5)

    def cleanup(self) -> None:
        if self.key_name:
            self.ec2.delete_key_pair(KeyName=self.key_name)
            self.key_name = None
        for group in list(self.groups.values()):
            self._delete_group(group, wait_s=self.options.group_delete_wait_s)
        self.groups.clear()
