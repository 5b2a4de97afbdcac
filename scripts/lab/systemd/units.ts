/** The files each boot of the systemd lab adds on top of the cached root (its overlay's upper layer). */

/** The address networkd gives the managed link, and the stand-in's pod-path responder port. */
export const LAB_ADDRESS = '10.88.0.1';
export const PEER_ADDRESS = '10.88.0.2';
export const POD_PORT = 4240;

/** While this file exists the stand-in's pod path resets every connection; cilium.service removes it when it starts. */
export const BROKEN_FLAG = '/run/cilium-standin/broken';
/** While this file exists an upgrade run (apt-daily-upgrade.service) breaks the pod path after restarting networkd. */
export const BREAK_ON_UPGRADE_FLAG = '/run/connwatch-lab-break-on-upgrade';

export const NETWORK_FILE = `[Match]
Name=eth0

[Network]
Address=${LAB_ADDRESS}/24
LinkLocalAddressing=no
IPv6AcceptRA=no
`;

export const CILIUM_UNIT = `[Unit]
Description=Cilium agent stand-in (connwatch systemd lab): API socket, cilium-health socket, pod path on :${POD_PORT}

[Service]
Type=simple
ExecStartPre=/bin/rm -f ${BROKEN_FLAG}
ExecStart=/usr/local/bin/node /usr/local/lib/connwatch-lab/cilium-standin.mjs
Restart=no

[Install]
WantedBy=multi-user.target
`;

/** An unattended-upgrade run as it hurts: a oneshot that restarts networkd (as an upgrade of systemd does). */
export const UPGRADE_UNIT = `[Unit]
Description=apt-daily-upgrade stand-in (connwatch systemd lab): restarts systemd-networkd as a systemd upgrade does

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'sleep 1; systemctl restart systemd-networkd.service; if [ -e ${BREAK_ON_UPGRADE_FLAG} ]; then mkdir -p ${BROKEN_FLAG.replace(/\/[^/]+$/, '')}; touch ${BROKEN_FLAG}; fi; sleep 1'
`;

/** What install.sh writes where a `cilium` group exists (Cilium's socket is root:cilium 0660). */
export const CILIUM_SOCKET_DROPIN = `[Service]
SupplementaryGroups=cilium
`;
