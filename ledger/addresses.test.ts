import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isValidPayoutAddress, type PayoutNetwork, toEip55 } from './addresses.ts';

describe('isValidPayoutAddress', () => {
  const cases: Array<[PayoutNetwork, string, boolean, string]> = [
    ['BTC', '1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa', true, 'P2PKH'],
    ['BTC', '1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb', false, 'P2PKH, bad checksum'],
    ['BTC', '3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy', true, 'P2SH'],
    ['BTC', 'TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t', false, 'a Tron address'],
    ['BTC', 'bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4', true, 'bech32 P2WPKH'],
    ['BTC', 'BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4', true, 'bech32 upper case'],
    ['BTC', 'bc1qW508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4', false, 'bech32 mixed case'],
    ['BTC', 'bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5', false, 'bech32 bad checksum'],
    ['BTC', 'bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3', true, 'bech32 P2WSH'],
    ['BTC', 'bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0', true, 'bech32m taproot'],
    [
      'BTC',
      'bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7k7grplx',
      false,
      'v1 with bech32 checksum',
    ],
    ['BTC', 'tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx', false, 'testnet'],
    ['ETH', '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed', true, 'EIP-55 checksummed'],
    ['ERC20', '0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359', true, 'EIP-55 checksummed'],
    ['ETH', '0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed', true, 'all lower case'],
    ['ETH', '0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED', true, 'all upper case'],
    ['ETH', '0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed', false, 'mixed case, bad checksum'],
    ['ETH', '0x5aaeb6053f3e94c9b9a09f33669435e7ef1beae', false, '39 hex digits'],
    ['ETH', '5aaeb6053f3e94c9b9a09f33669435e7ef1beaed', false, 'no 0x'],
    ['TRX', 'TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t', true, 'USDT contract address'],
    ['TRC20', 'TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t', true, 'same on TRC20'],
    ['TRC20', 'TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6u', false, 'bad checksum'],
    ['TRC20', '1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa', false, 'a Bitcoin address'],
    ['TRC20', 'TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6', false, 'too short'],
  ];
  for (const [network, address, valid, what] of cases) {
    it(`${valid ? 'accepts' : 'refuses'} ${network} ${what}`, () => {
      assert.equal(isValidPayoutAddress(network, address), valid);
    });
  }

  it('computes EIP-55 checksums', () => {
    assert.equal(toEip55('0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359'), '0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359');
  });
});
