"""domain.operations against botocore's KMS model (the contract)."""

from api.protocol import service_model
from application.handlers.tags_policies import MAX_TAG_KEY_LENGTH
from domain.operations import OPERATIONS


def test_the_operations_that_answer_invalid_arn_are_those_whose_model_lists_it():
    model = service_model()
    for name in model.operation_names:
        errors = {shape.name for shape in model.operation_model(name).error_shapes}
        if name in OPERATIONS:
            assert OPERATIONS[name].answers_invalid_arn == ("InvalidArnException" in errors), name


def test_the_tag_key_bound_a_marker_is_held_to_is_the_models():
    assert MAX_TAG_KEY_LENGTH == service_model().shape_for("TagKeyType").metadata["max"]
