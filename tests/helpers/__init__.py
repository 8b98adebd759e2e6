"""Helpers shared by the tests, by topic (fixtures stay in tests/conftest.py):

- tree: the repository's paths (scripts, configs) and the check that files a test needs are in the tree;
- common: polling with a deadline and free TCP ports, for unit and ROS tests alike;
- ros: a private ROS master, managed subprocesses stopped with their process group, TopicLog, digest;
- data: deterministic episodes for the data tests; crash_child: the process the crash test kills;
- deploy: a tiny dataset and a checkpoint trained on it by the real trainer;
- replay: the fixture bag, reading it through the rosbag API, and `rosbag play`;
- wsg: the WSG 32's sample frames and the wait used by its tests;
- dsa: DSACON32 frames written by hand and the host end of the twin's pty.

Importing a module here imports no rospy (the ROS ones import it inside the functions that need it).
"""
