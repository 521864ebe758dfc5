"""Session fixtures of the metric tests (helpers live in ``metric_fixtures``)."""

import pytest
from metric_fixtures import identity_dataset


@pytest.fixture(scope="session")
def identity_data():
    """dlib's IdentityObservationsData: 10 factors of 10 values, observation = factors."""
    return identity_dataset()
