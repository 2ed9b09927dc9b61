/** Types of ./start-command.mjs for the TypeScript that imports it (the benches). */
export declare function npmStartCommand(): { nodeOptions: string[]; script: string[]; text: string };
