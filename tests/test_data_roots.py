import pytest

from paper_repro.data import find_dataset_root
from paper_repro.errors import UserError


def test_one_data_root_serves_both_layouts(tmp_path):
    (tmp_path / "mvtec_anomaly_detection" / "tile" / "train" / "good").mkdir(parents=True)
    (tmp_path / "CODEBRIM_classification_dataset" / "metadata").mkdir(parents=True)
    (tmp_path / "CODEBRIM_classification_dataset" / "metadata" / "defects.xml").write_text("<Defects/>")
    assert find_dataset_root(tmp_path, "mvtec").name == "mvtec_anomaly_detection"
    assert find_dataset_root(tmp_path, "codebrim").name == "CODEBRIM_classification_dataset"
    assert find_dataset_root(tmp_path / "mvtec_anomaly_detection", "mvtec").name == "mvtec_anomaly_detection"
    with pytest.raises(UserError, match="metadata/defects.xml"):
        find_dataset_root(tmp_path / "mvtec_anomaly_detection", "codebrim")
    with pytest.raises(UserError, match="no such data folder"):
        find_dataset_root(tmp_path / "absent", "mvtec")
