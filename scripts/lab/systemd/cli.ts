/** `npm run lab -- systemd up|down|status`: the real PID-1 systemd lab (index.ts). */
import { attachSystemdLab, downSystemdLab, listSystemdLabs, startSystemdLab } from './index.js';

export const SYSTEMD_USAGE = `  systemd up [--name cwsd-…] [--connwatch]   boot Debian's systemd 252 as PID 1 under systemd-nspawn in a
                               network namespace (cached root); print its bus address (JSON). --connwatch
                               installs connwatch with scripts/install.sh (its unit present, not started)
  systemd down [<name>]        power off and remove a systemd lab (every one when no name is given)
  systemd status               list systemd labs`;

export async function systemdCommand(sub: string | undefined, flags: { name: string | true | undefined; connwatch: boolean }, print: (value: unknown) => void): Promise<void> {
  const name = typeof flags.name === 'string' ? flags.name : undefined;
  switch (sub) {
    case 'up': {
      const lab = await startSystemdLab({ ...(name ? { name } : {}), connwatch: flags.connwatch, log: (line) => process.stderr.write(line + '\n') });
      return print(lab.description);
    }
    case 'down':
      return downSystemdLab(name);
    case 'status':
      return print(
        listSystemdLabs().map((n) => {
          try {
            return { ...attachSystemdLab(n).description, alive: true };
          } catch (err) {
            return { name: n, alive: false, why: (err as Error).message };
          }
        }),
      );
    default:
      throw new Error(`lab: systemd needs up|down|status\n${SYSTEMD_USAGE}`);
  }
}
