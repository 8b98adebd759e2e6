"""The TCP sockets a process tree listens on, read from /proc: each process's socket inodes (/proc/<pid>/fd)
matched against the LISTEN entries of its network namespace's tables (/proc/<pid>/net/tcp, tcp6)."""
import collections
import ipaddress
import os
import struct

Listener = collections.namedtuple('Listener', 'pid process address port')

_LISTEN = '0A'


def descendants(root):
    """`root` and every process below it (roslaunch's nodes run in their own sessions, but are its children)."""
    children = collections.defaultdict(list)
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        parent = int(stat.rsplit(')', 1)[1].split()[1])
        children[parent].append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _address(hex_address):
    """The kernel's hex address (4 or 16 bytes, printed as 32-bit words in host order) -> an ipaddress object."""
    words = [int(hex_address[i:i + 8], 16) for i in range(0, len(hex_address), 8)]
    return ipaddress.ip_address(b''.join(struct.pack('=I', word) for word in words))


def _listen_table(pid):
    """inode -> (address, port) of every TCP socket in LISTEN state in the process's network namespace."""
    table = {}
    for name in ('tcp', 'tcp6'):
        try:
            with open('/proc/%d/net/%s' % (pid, name)) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != _LISTEN:
                continue
            hex_address, hex_port = fields[1].split(':')
            table[fields[9]] = (_address(hex_address), int(hex_port, 16))
    return table


def _socket_inodes(pid):
    inodes = set()
    try:
        names = os.listdir('/proc/%d/fd' % pid)
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink('/proc/%d/fd/%s' % (pid, name))
        except OSError:
            continue
        if target.startswith('socket:['):
            inodes.add(target[len('socket:['):-1])
    return inodes


def _process_name(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            argv = [a.decode('utf-8', 'replace') for a in f.read().split(b'\0') if a]
    except OSError:
        return '?'
    scripts = [os.path.basename(a) for a in argv[:2]]
    return ' '.join(scripts) or '?'


def listeners(root):
    """Every listening TCP socket of `root`'s process tree, as Listener(pid, process, address, port)."""
    found = []
    for pid in descendants(root):
        inodes = _socket_inodes(pid)
        if not inodes:
            continue
        for inode, (address, port) in _listen_table(pid).items():
            if inode in inodes:
                found.append(Listener(pid, _process_name(pid), address, port))
    return found


def is_loopback(address):
    mapped = getattr(address, 'ipv4_mapped', None)
    return (mapped or address).is_loopback
