from orchestrator.domain.models import BackupStatus, JobState
from orchestrator.usecases import backups, jobs


def test_backup_of_assigned_vm_ends_backed_up(world):
    with world.core.scope(world.alice) as s:
        job = backups.create_backup(s, world.alice_vm)
    with world.core.scope(world.alice) as s:
        done = jobs.show(s, job.id)
        assert done.state is JobState.SUCCEEDED
        point = backups.show(s, done.subject_id)
        assert point.status is BackupStatus.BACKED_UP
        assert point.size == 12 * 2**30
