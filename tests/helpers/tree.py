"""Paths inside the repository, and the check that the files a test needs are in the tree."""
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(REPO_ROOT, 'scripts')
TRAIN_CONFIG = os.path.join(REPO_ROOT, 'config', 'train_robot.yaml')
ROBOT_YAML = os.path.join(REPO_ROOT, 'config', 'robot.yaml')
STUBS = os.path.join(REPO_ROOT, 'tests', 'stubs')  # stand-ins for SDKs that are not packaged (intera_interface)


def script(name):
    """The path of scripts/<name> (a ROS node's executable)."""
    return os.path.join(SCRIPTS, name)


def missing_from_tree(paths):
    """The paths (relative to the repository root, or absolute) that do not exist, relative to the root when
    they are inside it."""
    missing = [os.path.join(REPO_ROOT, p) for p in paths if not os.path.exists(os.path.join(REPO_ROOT, p))]
    return [os.path.relpath(p, REPO_ROOT) if p.startswith(REPO_ROOT + os.sep) else p for p in missing]
