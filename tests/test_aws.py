"""The ``aws`` provider's control plane against moto (``moto_server`` on loopback), its data
path through the real loopback sshd: tags, key pair and security group, capacity fallback
through subnets and types, quota errors, and a sweep that removes expired instances only.

moto does not simulate stock-outs, so capacity and quota errors are injected with a
botocore ``before-call`` hook on the provider's real client (the call never reaches moto).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

pytest.importorskip("boto3")
pytest.importorskip("moto")
pytest.importorskip("asyncssh")

from pytest_ale.providers.aws import AwsProvider
from pytest_ale.providers.vm_base import CapacityError, QuotaError
from pytest_ale.sandbox import SandboxSpec
from tests.conformance.cases import aws_options
from tests.conformance.env import Env
from tests.conformance.sshd import available

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    shared = Env()
    yield shared
    shared.close()


@pytest.fixture(scope="module")
def subnets(env: Env) -> list[str]:
    ec2 = env.ec2()
    vpc = ec2.create_vpc(CidrBlock="10.50.0.0/16")["Vpc"]["VpcId"]
    return [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.50.{n}.0/24", AvailabilityZone=f"us-east-1{zone}")[
            "Subnet"
        ]["SubnetId"]
        for n, zone in enumerate("abc")
    ]


def make(env: Env, **extra: Any) -> AwsProvider:
    provider = AwsProvider(aws_options(env, **extra))
    env.sshd.authorize(provider.public_key)
    return provider


def refuse(provider: AwsProvider, rule) -> list[tuple[str, str]]:
    """Make RunInstances fail with ``rule(subnet, type)`` (an error code or None)."""
    calls: list[tuple[str, str]] = []

    def hook(params: dict[str, Any], **_: Any) -> Any:
        body = params["body"]  # the serialized EC2 query parameters
        where = (body.get("SubnetId", ""), body["InstanceType"])
        calls.append(where)
        code = rule(*where)
        if code is None:
            return None
        return (
            type("Http", (), {"status_code": 500 if "Capacity" in code else 400, "headers": {}})(),
            {"Error": {"Code": code, "Message": f"injected {code}"}, "ResponseMetadata": {}},
        )

    provider.ec2.meta.events.register("before-call.ec2.RunInstances", hook)
    return calls


def live(env: Env) -> list[dict[str, Any]]:
    reply = env.ec2().describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
    )
    return [i for r in reply["Reservations"] for i in r["Instances"]]


def spec(run_id: str = "aws-run", **extra: Any) -> SandboxSpec:
    return SandboxSpec(run_id=run_id, trial_id="tests/test_aws.py::t", **extra)


def test_instance_is_tagged_keyed_and_shut_down_means_terminate(env: Env) -> None:
    provider = make(env)
    sandbox = provider.acquire(spec("Tag-Run.1"))
    instance = provider.held[sandbox]
    try:
        data = env.ec2().describe_instances(InstanceIds=[instance.id])["Reservations"][0]["Instances"][0]
        tags = {t["Key"]: t["Value"] for t in data["Tags"]}
        assert tags["ale-managed"] == "true" and tags["ale-run-id"] == "tag-run-1"
        assert int(tags["ale-expiry"]) > 0
        assert data["KeyName"] == provider.key_name
        attribute = env.ec2().describe_instance_attribute(
            InstanceId=instance.id, Attribute="instanceInitiatedShutdownBehavior"
        )
        assert attribute["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
        user_data = env.ec2().describe_instance_attribute(InstanceId=instance.id, Attribute="userData")
        users = yaml.safe_load(base64.b64decode(user_data["UserData"]["Value"]))["users"]
        assert users[0] == "default" and users[1]["name"] == provider.agent_user
        assert users[1]["sudo"] is False and "ssh_authorized_keys" not in users[1]  # no sudo, no key
        (group,) = env.ec2().describe_security_groups(
            GroupIds=[g["GroupId"] for g in data["SecurityGroups"]]
        )["SecurityGroups"]
        (rule,) = group["IpPermissions"]
        assert (rule["FromPort"], rule["ToPort"], rule["IpProtocol"]) == (22, 22, "tcp")
        assert [r["CidrIp"] for r in rule["IpRanges"]] == ["127.0.0.1/32"]
        assert sandbox.exec(["echo", "over ssh"]).stdout == "over ssh\n"
    finally:
        provider.release(sandbox)
        provider.close()
    assert instance.id not in {i["InstanceId"] for i in live(env)}
    names = {p["KeyName"] for p in env.ec2().describe_key_pairs()["KeyPairs"]}
    assert provider.tag + "-key" not in names


def test_capacity_errors_fall_through_subnets_and_types(env: Env, subnets: list[str]) -> None:
    provider = make(env, subnets=subnets, instance_types=["c6i.large", "c5.large"])
    full = {(subnets[0], "c6i.large"), (subnets[0], "c5.large"), (subnets[1], "c6i.large")}
    calls = refuse(provider, lambda s, t: "InsufficientInstanceCapacity" if (s, t) in full else None)
    sandbox = provider.acquire(spec())
    instance = provider.held[sandbox]
    try:
        assert calls == [
            *sorted(full, key=lambda st: (subnets.index(st[0]), st[1] != "c6i.large")),
            (subnets[1], "c5.large"),
        ]
        data = env.ec2().describe_instances(InstanceIds=[instance.id])["Reservations"][0]["Instances"][0]
        assert (data["SubnetId"], data["InstanceType"]) == (subnets[1], "c5.large")
    finally:
        provider.release(sandbox)
        provider.close()


def test_no_capacity_anywhere_is_a_typed_infra_error_and_nothing_is_left(
    env: Env, subnets: list[str]
) -> None:
    before = {i["InstanceId"] for i in live(env)}
    provider = make(env, subnets=subnets[:2], instance_types=["c6i.large", "c5.large"])
    calls = refuse(provider, lambda s, t: "InsufficientInstanceCapacity")
    with pytest.raises(CapacityError, match="InsufficientInstanceCapacity"):
        provider.acquire(spec())
    assert len(calls) == 4
    provider.close()
    assert {i["InstanceId"] for i in live(env)} == before


def test_quota_errors_become_quota_error(env: Env) -> None:
    provider = make(env, instance_types=["c6i.large", "c5.large"])
    calls = refuse(provider, lambda s, t: "VcpuLimitExceeded")
    with pytest.raises(QuotaError, match="VcpuLimitExceeded"):
        provider.acquire(spec())
    assert len(calls) == 2
    provider.close()


def test_other_errors_are_infra_errors_without_fallback(env: Env) -> None:
    provider = make(env, instance_types=["c6i.large", "c5.large"])
    calls = refuse(provider, lambda s, t: "InvalidAMIID.Malformed")
    with pytest.raises(Exception, match="InvalidAMIID") as info:
        provider.acquire(spec())
    assert not isinstance(info.value, CapacityError)
    assert len(calls) == 1
    provider.close()


def test_sweep_removes_expired_instances_and_nothing_else(env: Env) -> None:
    ec2 = env.ec2()
    foreign = ec2.run_instances(ImageId=env.ami(), MinCount=1, MaxCount=1, InstanceType="t3.micro")[
        "Instances"
    ][0]
    provider = make(env)
    expired = provider.acquire(spec("old-run", expiry_s=-5))
    fresh = provider.acquire(spec("new-run"))
    held = {sandbox: provider.held[sandbox] for sandbox in (expired, fresh)}
    for sandbox in (expired, fresh):  # a crash: never released
        provider.held.pop(sandbox)
        sandbox.close()
    sweeper = AwsProvider(aws_options(env))
    removed = sweeper.sweep(None)
    assert any(held[expired].id in entry or held[expired].name in entry for entry in removed)
    ids = {i["InstanceId"] for i in live(env)}
    assert held[expired].id not in ids
    assert held[fresh].id in ids and foreign["InstanceId"] in ids
    assert sweeper.sweep("new-run")
    ids = {i["InstanceId"] for i in live(env)}
    assert held[fresh].id not in ids and foreign["InstanceId"] in ids
    provider.close()
    sweeper.close()
    ec2.terminate_instances(InstanceIds=[foreign["InstanceId"]])
