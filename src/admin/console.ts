import { Router } from 'express';
import type { AppContext } from '../context.ts';
import type { AdminOperations } from './operations.ts';

export function consoleRouter(_ctx: AppContext, _ops: AdminOperations): Router {
  return Router();
}
