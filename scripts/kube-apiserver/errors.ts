// Status objects for failures, shaped as k8s.io/apimachinery/pkg/api/errors builds them.

/** A failure the server answers with a v1 Status (and, for 429, a Retry-After header). */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: StatusDetails,
    /** ListMeta on the Status (an inconsistent continue token with a 410). */
    readonly listMeta?: Record<string, unknown>,
  ) {
    super(message);
  }

  status(): Record<string, unknown> {
    const s: Record<string, unknown> = { kind: 'Status', apiVersion: 'v1', metadata: this.listMeta ?? {}, status: 'Failure', message: this.message, reason: this.reason };
    if (this.details) s.details = this.details;
    s.code = this.code;
    return s;
  }
}

export interface StatusCause { reason?: string; message?: string; field?: string }
export interface StatusDetails { name?: string; group?: string; kind?: string; uid?: string; causes?: StatusCause[]; retryAfterSeconds?: number }

/** `nodes` or `leases.coordination.k8s.io`, as GroupResource.String() prints it. */
export function qualified(group: string, resource: string): string {
  return group ? `${resource}.${group}` : resource;
}

function details(group: string, kind: string, name: string | undefined): StatusDetails {
  const d: StatusDetails = {};
  if (name) d.name = name;
  if (group) d.group = group;
  d.kind = kind;
  return d;
}

export const errors = {
  notFound: (group: string, resource: string, name: string) =>
    new ApiError(404, 'NotFound', `${qualified(group, resource)} "${name}" not found`, details(group, resource, name)),
  alreadyExists: (group: string, resource: string, name: string) =>
    new ApiError(409, 'AlreadyExists', `${qualified(group, resource)} "${name}" already exists`, details(group, resource, name)),
  conflict: (group: string, resource: string, name: string, why = 'the object has been modified; please apply your changes to the latest version and try again') =>
    new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(group, resource)} "${name}": ${why}`, details(group, resource, name)),
  /** kind is the Kind here (NewInvalid takes a GroupKind), unlike the other details. */
  invalid: (group: string, kind: string, name: string, causes: StatusCause[]) => {
    const list = causes.map((c) => `${c.field}: ${c.message}`);
    const msg = `${group ? `${kind}.${group}` : kind} "${name}" is invalid: ${list.length === 1 ? list[0] : `[${list.join(', ')}]`}`;
    return new ApiError(422, 'Invalid', msg, { ...details(group, kind, name), causes });
  },
  badRequest: (message: string) => new ApiError(400, 'BadRequest', message),
  forbidden: (group: string, resource: string, name: string, why: string) =>
    new ApiError(403, 'Forbidden', `${qualified(group, resource)}${name ? ` "${name}"` : ''} is forbidden: ${why}`, details(group, resource, name)),
  unauthorized: () => new ApiError(401, 'Unauthorized', 'Unauthorized'),
  methodNotAllowed: (method: string) =>
    new ApiError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`, { causes: [{ message: method }] }),
  notFoundPath: () => new ApiError(404, 'NotFound', 'the server could not find the requested resource', {}),
  unsupportedMediaType: (given: string, accepted: string[]) =>
    new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}`, { causes: [{ reason: 'UnsupportedMediaType', message: given }] }),
  notAcceptable: (accepted: string[]) =>
    new ApiError(406, 'NotAcceptable', `only the following media types are accepted: ${accepted.join(', ')}`),
  gone: (message: string) => new ApiError(410, 'Expired', message),
  tooManyRequests: (message: string, retryAfterSeconds: number, causes?: StatusCause[]) => {
    const d: StatusDetails = {};
    if (causes) d.causes = causes;
    if (retryAfterSeconds > 0) d.retryAfterSeconds = retryAfterSeconds;
    return new ApiError(429, 'TooManyRequests', message, d);
  },
  internal: (message: string) =>
    new ApiError(500, 'InternalError', `Internal error occurred: ${message}`, { causes: [{ message }] }),
};
