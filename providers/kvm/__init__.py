"""KVM hosts: reaching them (SSH or local), reading libvirt's domains, and the ``kvm``
backup driver that snapshots all of a VM's disks at once and hands them to the NAS data
mover."""
