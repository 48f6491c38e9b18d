"""Finding ids are rendered exactly like cdk-nag renders CloudFormation references."""

from __future__ import annotations

from cdk_constructs.nag import render


def test_render_matches_cdk_nags_flattening() -> None:
    joined = {
        "Fn::Join": [
            "",
            ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", {"Fn::Sub": "cdk-assets-${AWS::AccountId}-eu-west-2"}, "/*"],
        ]
    }
    assert render(joined) == "arn:<AWS::Partition>:s3:::cdk-assets-<AWS::AccountId>-eu-west-2/*"
    assert render({"Fn::GetAtt": ["Fn1", "Arn"]}) == "<Fn1.Arn>"
    assert render({"Fn::ImportValue": "Stack:ExportsOutputRefGroup"}) == "Stack:ExportsOutputRefGroup"
    assert render({"Fn::Select": [0, ["a"]]}) == '{"Fn::Select":[0,["a"]]}'
