/**
 * Errors raised by the library. As in piscina's `errors.ts`, every error the library can raise is
 * built here, so each layer constructs them the same way.
 */

/** The errno names that the registry can return, spelled as Linux spells them. */
export type Errno =
  | 'ENOENT'
  | 'EBUSY'
  | 'EINVAL'
  | 'EEXIST'
  | 'ENOSPC'
  | 'EOVERFLOW'
  | 'EOPNOTSUPP'
  | 'EADDRINUSE'
  | 'EMSGSIZE'
  | 'EFAULT'
  | 'ENOMEM'
  | 'EBADF'
  | 'EPERM'
  | 'EIO'
  | 'ENODEV'
  | 'ESPIPE';

/** An iommufd error: `errno` is the name the kernel returns for the same misuse. */
export class IommufdError extends Error {
  /** The errno name, e.g. 'ENOENT'. */
  readonly errno: Errno;
  constructor(errno: Errno, message: string) {
    super(`${errno}: ${message}`);
    this.name = 'IommufdError';
    this.errno = errno;
  }
}
