// Lint rules that keep the architecture of DESIGN.md §3 visible: who may import whom, and no cycles.
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

const zone = (target, from, message) => ({ target, from, message });

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'protocol/gen/**', 'sidecar/gen/**', 'coverage/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })] },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'separate-type-imports' }],
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-restricted-paths': [
        'error',
        {
          zones: [
            zone('./broker', ['./client', './sidecar', './operator', './cli', './test', './testkit', './bench'], 'broker/ imports only protocol/ and lib/'),
            zone('./client', ['./broker', './sidecar', './operator', './cli', './test', './testkit', './bench'], 'client/ imports only protocol/ and lib/'),
            zone('./protocol', ['./broker', './client', './sidecar', './operator', './cli', './test', './testkit', './bench'], 'protocol/ imports only lib/'),
            zone('./lib', ['./protocol', './broker', './client', './sidecar', './operator', './cli', './test', './testkit', './bench'], 'lib/ holds no business logic and imports no component'),
            zone('./sidecar', ['./broker', './operator', './cli', './test', './testkit', './bench'], 'sidecar/ reaches brokers only through client/'),
            zone('./cli', ['./sidecar/delivery', './test', './testkit', './bench'], 'cli/ reaches brokers only through client/'),
            // `kmq broker` and `kmq dev` run a broker in-process: broker/main.ts is its only entry.
            { target: './cli', from: './broker', except: ['./main.ts'], message: 'cli/ starts brokers through broker/main.ts and talks to them only through client/' },
            { target: './cli', from: './operator', except: ['./main.ts'], message: 'cli/ starts the operator through operator/main.ts' },
            zone('./operator', ['./broker', './sidecar', './cli', './test', './testkit', './bench'], 'operator/ reaches brokers only through client/'),
            zone('./bench', ['./test'], 'bench/ shares launchers with test/ through testkit/'),
            zone('./testkit', ['./test', './bench'], 'testkit/ holds the process launchers that test/ and bench/ share, and imports neither'),
          ],
        },
      ],
    },
  },
);
