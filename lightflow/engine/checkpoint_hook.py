"""Checkpoint saves that cannot lose progress.

mmengine's ``CheckpointHook`` deletes the oldest kept checkpoint *before* writing the new one, writes the new file in
place, and rewrites ``last_checkpoint`` in place: a crash during a save leaves a half-written file, the previous
checkpoint gone and ``last_checkpoint`` naming a file that may not exist. Here every local file mmengine writes goes
to a temporary name first and is renamed over the target (atomic on POSIX), ``last_checkpoint`` likewise, and the
oldest checkpoint is deleted only after the new one and ``last_checkpoint`` are complete. The previous *best*
checkpoint (``save_best``) likewise goes only after the new best is written (mmengine deletes it first).

A run deletes only files in its own checkpoint folder: mmengine resumes the absolute path of the previous best from
the checkpoint, so ``--resume`` in a copy of a work dir would delete the *original's* best (issue 22). On resume a
best path outside the folder is re-pointed at the file of the same name inside it (or forgotten), and any deletion
outside the folder is skipped.
"""
from __future__ import annotations

import os
from pathlib import Path

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, io as mm_io, register_backend
from mmengine.hooks import CheckpointHook

from ..io import atomic_write
from .registry import HOOKS

__all__ = ['AtomicLocalBackend', 'AtomicCheckpointHook']


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with ``put`` / ``put_text`` written to a temporary file, then renamed."""

    def put(self, obj: bytes, filepath: str | Path) -> None:
        with atomic_write(filepath) as f:
            f.write(obj)

    def put_text(self, obj: str, filepath: str | Path, encoding: str = 'utf-8') -> None:
        with atomic_write(filepath) as f:
            f.write(obj.encode(encoding))


register_backend('local', AtomicLocalBackend, force=True, prefixes='')
for _key in [k for k in mm_io.backend_instances if k.startswith(':')]:  # instances made before this import
    del mm_io.backend_instances[_key]


def _inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether ``path`` lies in ``folder`` (symlinks resolved)."""
    return Path(folder).resolve() in Path(path).resolve().parents


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (same arguments) that writes atomically, deletes the oldest kept checkpoint last and never
    deletes outside its own checkpoint folder."""

    def before_train(self, runner) -> None:
        """mmengine's set-up, then a resumed best checkpoint of another folder (a copied work dir) re-pointed here."""
        super().before_train(runner)
        if self.save_best is None or not is_main_process():
            return
        single = len(self.key_indicators) == 1
        keys = ['best_ckpt'] if single else [f'best_ckpt_{k}' for k in self.key_indicators]
        for key, indicator in zip(keys, self.key_indicators):
            path = self.best_ckpt_path if single else self.best_ckpt_path_dict.get(indicator)
            if not path or _inside(path, self.out_dir):
                continue
            local = os.path.join(self.out_dir, os.path.basename(str(path)))
            local = local if os.path.isfile(local) else None
            runner.logger.info(f'Resumed best checkpoint {path} is outside {self.out_dir}: '
                               f'{"using " + local if local else "it is left alone"}')
            if single:
                self.best_ckpt_path = local
            else:
                self.best_ckpt_path_dict[indicator] = local
            runner.message_hub.update_info(key, local)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        doomed = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                doomed = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(self.out_dir, ckpt_filename, self.file_client_args, save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
                               backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        with atomic_write(os.path.join(runner.work_dir, 'last_checkpoint')) as f:
            f.write(str(self.last_ckpt).encode())
        if doomed is not None:
            old = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(doomed))
            if not _inside(old, self.out_dir):  # a filename_tmpl with '..': never delete outside the folder
                return
            if self.file_backend.isfile(old):
                self.file_backend.remove(old)
            elif self.file_backend.isdir(old):  # deepspeed saves folders
                self.file_backend.rmtree(old)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """mmengine's best-checkpoint logic, with every deletion it asks for held back until it has written the new
        best (a crash while saving keeps the old best)."""
        backend = self.file_backend
        deferred: list[tuple] = []
        backend.remove = lambda path: deferred.append((type(backend).remove, path))
        backend.rmtree = lambda path: deferred.append((type(backend).rmtree, path))
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            del backend.remove, backend.rmtree  # the instance attributes; the class methods show again
        best = getattr(self, 'best_ckpt_path_dict', None) or {}
        # No best written (save_best off, no improvement) leaves mmengine without best_ckpt_path: nothing to keep.
        keep = {str(p) for p in (getattr(self, 'best_ckpt_path', None), *best.values()) if p}
        for remove, path in deferred:
            if str(path) not in keep and _inside(path, self.out_dir):
                remove(backend, path)
