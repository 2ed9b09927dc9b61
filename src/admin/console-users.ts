/*
 * The admin console's user screens: create, reset a password, relink the Practitioner, roles,
 * deactivate, unlock sign-in, end a user's access (sessions and grants). An administrator cannot
 * deactivate or demote themself.
 */
import type { Request, Response, Router } from 'express';
import { rolesFromForm, userInputFromForm } from './console-forms.ts';
import { actorOf, orInvalid, param, redirectWith, render } from './console-render.ts';
import type { AdminOperations } from './operations.ts';
import { endedAccessNotice } from './user-access.ts';

/** GET and POST under /admin/users. */
export function userScreens(router: Router, ops: AdminOperations): void {
  // ---- users
  const usersPage = async (
    req: Request,
    res: Response,
    extra: Record<string, unknown> = {},
    status = 200,
  ) => {
    render(
      req,
      res,
      'users',
      { title: 'Users', users: await ops.listUsers(), values: { roles: ['clinician'] }, ...extra },
      status,
    );
  };
  router.get('/users', (req, res) => usersPage(req, res));
  router.post('/users', async (req, res) => {
    const input = userInputFromForm(req.body);
    await orInvalid(
      async () => {
        const user = await ops.createUser(actorOf(req, res), input);
        await redirectWith(
          req,
          res,
          '/admin/users',
          `User ${user.username} created, linked to Practitioner/${user.practitionerId}.`,
        );
      },
      (errors) => {
        const { password: _password, ...kept } = input;
        const identifiers = (input.identifiers as { system: string; value: string }[] | undefined)?.[0];
        return usersPage(
          req,
          res,
          {
            values: {
              ...kept,
              identifier_system: identifiers?.system ?? '',
              identifier_value: identifiers?.value ?? '',
            },
            errors,
          },
          400,
        );
      },
    );
  });
  router.post('/users/:userId/password', async (req, res) => {
    const id = param(req, 'userId');
    await orInvalid(
      async () => {
        await ops.resetPassword(actorOf(req, res), id, { password: String(req.body.password ?? '') });
        const user = await ops.getUser(id);
        await redirectWith(
          req,
          res,
          '/admin/users',
          `Password of ${user.username} reset; their sessions and grants were ended.`,
        );
      },
      async (errors) =>
        await redirectWith(
          req,
          res,
          '/admin/users',
          `Password not changed: ${Object.values(errors).join(' ')}`,
        ),
    );
  });
  router.post('/users/:userId/unlock', async (req, res) => {
    const user = await ops.unlockUser(actorOf(req, res), param(req, 'userId'));
    await redirectWith(req, res, '/admin/users', `${user.username} may sign in again from anywhere.`);
  });
  router.post('/users/:userId/practitioner', async (req, res) => {
    const id = param(req, 'userId');
    await orInvalid(
      async () => {
        const user = await ops.updateUser(actorOf(req, res), id, {
          practitioner: String(req.body.practitioner ?? '').trim(),
        });
        await redirectWith(
          req,
          res,
          '/admin/users',
          `${user.username} is now linked to Practitioner/${user.practitionerId}.`,
        );
      },
      async (errors) =>
        await redirectWith(
          req,
          res,
          '/admin/users',
          `Practitioner not changed: ${Object.values(errors).join(' ')}`,
        ),
    );
  });
  router.post('/users/:userId/roles', async (req, res) => {
    const id = param(req, 'userId');
    if (id === res.locals.currentUser?.id && !rolesFromForm(req.body).includes('admin')) {
      await redirectWith(
        req,
        res,
        '/admin/users',
        'You cannot remove your own admin role; ask another administrator.',
      );
      return;
    }
    const user = await ops.updateUser(actorOf(req, res), id, { roles: rolesFromForm(req.body) });
    await redirectWith(req, res, '/admin/users', `Roles of ${user.username} saved.`);
  });
  router.post('/users/:userId/active', async (req, res) => {
    const id = param(req, 'userId');
    const active = req.body.active === 'true';
    if (id === res.locals.currentUser?.id && !active) {
      await redirectWith(req, res, '/admin/users', 'You cannot deactivate yourself.');
      return;
    }
    const user = await ops.updateUser(actorOf(req, res), id, { active });
    await redirectWith(
      req,
      res,
      '/admin/users',
      `${user.username} ${active ? 'reactivated' : 'deactivated; their sessions and grants were ended'}.`,
    );
  });
  router.post('/users/:userId/revoke-grants', async (req, res) => {
    const ended = await ops.endUserAccess(actorOf(req, res), param(req, 'userId'));
    const { username } = await ops.getUser(ended.id);
    await redirectWith(req, res, '/admin/users', endedAccessNotice(username, ended));
  });
}
