import type { MetadataStore } from '../cluster/metadata-store.js';

const BLOCK = 1000;

/** Hands out producer ids from blocks reserved in the metadata store, so ids are never reused after a restart. */
export class ProducerIdAllocator {
  private nextId = 0;
  private end = 0;
  private reserving: Promise<void> | undefined;

  constructor(private readonly store: Pick<MetadataStore, 'reserveProducerIds'>) {}

  async next(): Promise<number> {
    while (this.nextId >= this.end) {
      this.reserving ??= this.store
        .reserveProducerIds(BLOCK)
        .then((first) => {
          this.nextId = first;
          this.end = first + BLOCK;
        })
        .finally(() => {
          this.reserving = undefined;
        });
      await this.reserving;
    }
    return this.nextId++;
  }
}
