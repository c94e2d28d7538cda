"""A filesystem that loses what was not fsynced (LazyFS's idea), on pyfuse3
over Debian's fuse3.

``python -m jepsen_lite.lazyfs SOURCE MOUNTPOINT`` mirrors SOURCE at
MOUNTPOINT.  Metadata (create, rename, unlink, mkdir, truncate) goes to
SOURCE at once; file *data* written through the mount is held in memory
(readers through the mount see it, as they would see the page cache) and
reaches SOURCE only when the file is fsynced or fdatasynced.  SIGUSR1 is a
power loss: every unsynced write is dropped and the filesystem unmounts
itself (the kernel's page cache of the mount goes with it); mount it again
to see what survived.  A member whose data dir is on such a mount loses
exactly what a power cut would lose if it forgot an fdatasync.

Not modelled: lost metadata (a new file or rename that was not followed by
a directory fsync survives here), torn sector writes, reordering within
what was synced.
"""
from __future__ import annotations

import bisect
import errno
import os
import signal
import stat as stat_m
import sys
from collections import defaultdict

import pyfuse3
import trio

ROOT = pyfuse3.ROOT_INODE


class Dirty:
    """One file's unsynced data: sorted, non-overlapping extents over the
    backing file (``starts[i]`` -> ``bufs[i]``), and the logical size they
    give it."""

    def __init__(self):
        self.starts: list[int] = []
        self.bufs: list[bytearray] = []
        self.size = 0                   # at least this long (0: the backing file's size)

    @property
    def extents(self):
        return list(zip(self.starts, self.bufs))

    def write(self, off: int, data: bytes) -> None:
        end = off + len(data)
        # the extents that touch [off, end]: from the last one starting at or
        # before off (if it reaches off) to the last one starting at or before end
        i = bisect.bisect_right(self.starts, off) - 1
        if i < 0 or self.starts[i] + len(self.bufs[i]) < off:
            i += 1
        j = bisect.bisect_right(self.starts, end)
        start, merged = off, bytearray(data)
        if i < j:
            if self.starts[i] < off:
                merged[0:0] = self.bufs[i][:off - self.starts[i]]
                start = self.starts[i]
            last_end = self.starts[j - 1] + len(self.bufs[j - 1])
            if last_end > end:
                merged += self.bufs[j - 1][end - self.starts[j - 1]:]
        self.starts[i:j] = [start]
        self.bufs[i:j] = [merged]
        self.size = max(self.size, end)

    def overlay(self, off: int, buf: bytearray) -> None:
        end = off + len(buf)
        i = max(bisect.bisect_right(self.starts, off) - 1, 0)
        while i < len(self.starts) and self.starts[i] < end:
            eoff, ebuf = self.starts[i], self.bufs[i]
            lo, hi = max(off, eoff), min(end, eoff + len(ebuf))
            if lo < hi:
                buf[lo - off:hi - off] = ebuf[lo - eoff:hi - eoff]
            i += 1

    def truncate(self, size: int) -> None:
        keep = [(o, b[:size - o]) for o, b in zip(self.starts, self.bufs) if o < size]
        self.starts = [o for o, _ in keep]
        self.bufs = [b for _, b in keep]
        self.size = min(self.size, size)


class LazyFS(pyfuse3.Operations):
    def __init__(self, source: str):
        super().__init__()
        self.paths: dict[int, str] = {ROOT: source}
        self.lookups: dict[int, int] = defaultdict(int)
        self.fds: dict[int, int] = {}          # fh (the backing fd) -> inode
        self.dirty: dict[int, Dirty] = {}      # inode -> unsynced data
        self.synced_bytes = 0
        self.dropped_bytes = 0

    # ---- inodes ------------------------------------------------------------------------
    def _path(self, inode: int) -> str:
        try:
            return self.paths[inode]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    def _remember(self, path: str, st: os.stat_result) -> None:
        self.paths[st.st_ino] = path
        self.lookups[st.st_ino] += 1

    def _attr(self, path: str, st: os.stat_result | None = None) -> pyfuse3.EntryAttributes:
        st = st or os.lstat(path)
        a = pyfuse3.EntryAttributes()
        for f in ("st_ino", "st_mode", "st_nlink", "st_uid", "st_gid", "st_rdev", "st_size",
                  "st_atime_ns", "st_mtime_ns", "st_ctime_ns"):
            setattr(a, f, getattr(st, f))
        a.st_blksize, a.st_blocks = st.st_blksize, st.st_blocks
        a.generation, a.entry_timeout, a.attr_timeout = 0, 0, 0
        d = self.dirty.get(st.st_ino)
        if d is not None:
            a.st_size = max(a.st_size, d.size)
        return a

    def _child(self, parent: int, name: bytes) -> str:
        return os.path.join(self._path(parent), os.fsdecode(name))

    @staticmethod
    def _os(fn, *args):
        try:
            return fn(*args)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno) from None

    async def lookup(self, parent_inode, name, ctx=None):
        path = self._child(parent_inode, name)
        st = self._os(os.lstat, path)
        self._remember(path, st)
        return self._attr(path, st)

    async def forget(self, inode_list):
        for inode, n in inode_list:
            self.lookups[inode] -= n
            if self.lookups[inode] <= 0 and inode != ROOT and inode not in self.dirty \
                    and inode not in self.fds.values():
                self.lookups.pop(inode, None)
                self.paths.pop(inode, None)

    async def getattr(self, inode, ctx=None):
        return self._attr(self._path(inode))

    async def setattr(self, inode, attr, fields, fh, ctx):
        path = self._path(inode)
        if fields.update_size:
            self._os(os.truncate, path, attr.st_size)
            if inode in self.dirty:
                self.dirty[inode].truncate(attr.st_size)
        if fields.update_mode:
            self._os(os.chmod, path, stat_m.S_IMODE(attr.st_mode))
        if fields.update_uid or fields.update_gid:
            self._os(os.chown, path, attr.st_uid if fields.update_uid else -1,
                     attr.st_gid if fields.update_gid else -1)
        if fields.update_atime or fields.update_mtime:
            st = os.lstat(path)
            self._os(os.utime, path, None, (
                attr.st_atime_ns if fields.update_atime else st.st_atime_ns,
                attr.st_mtime_ns if fields.update_mtime else st.st_mtime_ns))
        return self._attr(path)

    async def readlink(self, inode, ctx):
        return os.fsencode(self._os(os.readlink, self._path(inode)))

    async def statfs(self, ctx):
        s = os.statvfs(self._path(ROOT))
        out = pyfuse3.StatvfsData()
        for f in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree",
                  "f_favail", "f_namemax"):
            setattr(out, f, getattr(s, f))
        return out

    # ---- directories ---------------------------------------------------------------------
    async def opendir(self, inode, ctx):
        return inode

    async def readdir(self, fh, start_id, token):
        path = self._path(fh)
        entries = sorted((os.lstat(os.path.join(path, n)).st_ino, n) for n in os.listdir(path))
        for ino, name in entries:
            if ino <= start_id:
                continue
            full = os.path.join(path, name)
            if not pyfuse3.readdir_reply(token, os.fsencode(name), self._attr(full), ino):
                break
            self._remember(full, os.lstat(full))

    async def releasedir(self, fh):
        pass  # nothing is held per open directory

    async def mkdir(self, parent_inode, name, mode, ctx):
        path = self._child(parent_inode, name)
        self._os(os.mkdir, path, mode)
        st = os.lstat(path)
        self._remember(path, st)
        return self._attr(path, st)

    async def rmdir(self, parent_inode, name, ctx):
        self._os(os.rmdir, self._child(parent_inode, name))

    async def unlink(self, parent_inode, name, ctx):
        path = self._child(parent_inode, name)
        st = self._os(os.lstat, path)
        self._os(os.unlink, path)
        if st.st_nlink <= 1:
            self.dirty.pop(st.st_ino, None)

    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        old, new = self._child(parent_inode_old, name_old), self._child(parent_inode_new, name_new)
        st = self._os(os.lstat, old)
        self._os(os.rename, old, new)
        self.paths[st.st_ino] = new

    async def symlink(self, parent_inode, name, target, ctx):
        path = self._child(parent_inode, name)
        self._os(os.symlink, os.fsdecode(target), path)
        st = os.lstat(path)
        self._remember(path, st)
        return self._attr(path, st)

    async def link(self, inode, new_parent_inode, new_name, ctx):
        path = self._child(new_parent_inode, new_name)
        self._os(os.link, self._path(inode), path)
        return self._attr(path)

    # ---- files -----------------------------------------------------------------------------
    async def open(self, inode, flags, ctx):
        fd = self._os(os.open, self._path(inode), flags & ~(os.O_CREAT | os.O_APPEND))
        if flags & os.O_TRUNC and inode in self.dirty:
            self.dirty[inode].truncate(0)
        self.fds[fd] = inode
        return pyfuse3.FileInfo(fh=fd, keep_cache=False)

    async def create(self, parent_inode, name, mode, flags, ctx):
        path = self._child(parent_inode, name)
        fd = self._os(os.open, path, (flags | os.O_CREAT) & ~os.O_APPEND, mode)
        st = os.fstat(fd)
        self._remember(path, st)
        self.fds[fd] = st.st_ino
        return pyfuse3.FileInfo(fh=fd, keep_cache=False), self._attr(path, st)

    async def read(self, fh, off, size):
        buf = bytearray(self._os(os.pread, fh, size, off))
        d = self.dirty.get(self.fds[fh])
        if d is not None and d.starts:
            want = min(size, max(0, max(d.size, os.fstat(fh).st_size) - off))
            if len(buf) < want:
                buf += bytes(want - len(buf))
            d.overlay(off, buf)
        return bytes(buf)

    async def write(self, fh, off, buf):
        self.dirty.setdefault(self.fds[fh], Dirty()).write(off, buf)
        return len(buf)

    async def fsync(self, fh, datasync):
        inode = self.fds[fh]
        d = self.dirty.pop(inode, None)
        if d is not None:
            for off, data in d.extents:
                self._os(os.pwrite, fh, bytes(data), off)
                self.synced_bytes += len(data)
        self._os(os.fdatasync if datasync else os.fsync, fh)

    async def fsyncdir(self, fh, datasync):
        pass  # metadata is durable here at once (see the module docstring)

    async def flush(self, fh):
        pass  # close() does not make data durable: only fsync does

    async def release(self, fh):
        self.fds.pop(fh, None)
        os.close(fh)

    # ---- power ---------------------------------------------------------------------------
    def power_loss(self) -> None:
        self.dropped_bytes = sum(len(b) for d in self.dirty.values() for _, b in d.extents)
        self.dirty.clear()


async def _serve(fs: LazyFS) -> None:
    async def on_power_loss():
        with trio.open_signal_receiver(signal.SIGUSR1, signal.SIGTERM) as signals:
            async for sig in signals:
                if sig == signal.SIGUSR1:
                    fs.power_loss()
                    print(f"power loss: dropped {fs.dropped_bytes} unsynced bytes", flush=True)
                pyfuse3.terminate()
                return

    async with trio.open_nursery() as n:
        n.start_soon(on_power_loss)
        await pyfuse3.main()
        n.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    source, mountpoint = (argv if argv is not None else sys.argv[1:])[:2]
    fs = LazyFS(os.path.abspath(source))
    opts = set(pyfuse3.default_options)
    opts.discard("default_permissions")
    opts |= {"fsname=lazyfs"}
    pyfuse3.init(fs, mountpoint, opts)
    print("mounted", flush=True)
    try:
        trio.run(_serve, fs)
    finally:
        pyfuse3.close(unmount=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())


class Mount:
    """A lazyfs process the tool owns (stopped by its PID): ``start``,
    ``power_loss`` (drop unsynced data, unmount, mount again), ``stop``."""

    def __init__(self, source, mountpoint, log):
        self.source, self.mountpoint, self.log = str(source), str(mountpoint), log
        self.proc = None

    def start(self, timeout: float = 10.0) -> None:
        import subprocess
        import time
        os.makedirs(self.source, exist_ok=True)
        os.makedirs(self.mountpoint, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "jepsen_lite.lazyfs", self.source,
                                      self.mountpoint], stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while not os.path.ismount(self.mountpoint):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"lazyfs did not mount {self.mountpoint}")
            time.sleep(0.05)

    def _signal(self, sig) -> None:
        import subprocess
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if os.path.ismount(self.mountpoint):  # it died before unmounting
            subprocess.run(["fusermount3", "-u", "-z", self.mountpoint], capture_output=True)
        self.proc = None

    def power_loss(self) -> None:
        """Everything not fsynced is gone; the mount comes back."""
        self._signal(signal.SIGUSR1)
        self.start()

    def stop(self) -> None:
        self._signal(signal.SIGTERM)
